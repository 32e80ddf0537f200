"""Tiny benchmark folders in the official layouts, for tests and for trying the eval scripts on CPU.

python -m tests.helpers.eval_fixtures --root playground/data/eval
"""

from __future__ import annotations

import argparse
import json
import os

from PIL import Image


def _image(path: str, color=(200, 40, 40), size=(48, 40)) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, color).save(path)


def _json(path: str, obj) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)


def make_mme(root: str) -> None:
    base = os.path.join(root, "MME", "MME_Benchmark_release_version")
    # "existence": images/ + questions_answers_YN/ layout
    for i, (q1, q2) in enumerate([(("Is there a red square?", "Yes"), ("Is there a dog?", "No")),
                                  (("Is there a cat?", "No"), ("Is there a shape?", "Yes"))]):
        _image(os.path.join(base, "existence", "images", f"{i:04d}.jpg"))
        os.makedirs(os.path.join(base, "existence", "questions_answers_YN"), exist_ok=True)
        with open(os.path.join(base, "existence", "questions_answers_YN", f"{i:04d}.txt"), "w") as f:
            f.write(f"{q1[0]} Please answer yes or no.\t{q1[1]}\n{q2[0]} Please answer yes or no.\t{q2[1]}\n")
    # "color" (perception) and "code_reasoning" (cognition): image + same-named .txt side by side
    for subtask in ("color", "code_reasoning"):
        for i in range(2):
            _image(os.path.join(base, subtask, f"{i:04d}.png"), color=(20, 40 * i, 200))
            with open(os.path.join(base, subtask, f"{i:04d}.txt"), "w") as f:
                f.write("Is the shape blue? Please answer yes or no.\tYes\n"
                        "Is the shape green? Please answer yes or no.\tNo\n")


def make_gqa(root: str) -> None:
    data = os.path.join(root, "gqa", "data")
    questions = {}
    specs = [("201", "img1", "What color is the box?", "red", "query", "color"),
             ("202", "img1", "Is the box red?", "yes", "verify", None),
             ("203", "img2", "What shape is it?", "square", "query", "shape"),
             ("204", "img2", "Is it a circle or a square?", "square", "choose", "shape"),
             ("205", "img1", "Are both the box and the ball red?", "no", "logical", None),
             ("206", "img2", "What color is the ball?", "blue", "query", "color")]
    for qid, image, q, a, structural, group in specs:
        questions[qid] = {"imageId": image, "question": q, "answer": a, "fullAnswer": a, "isBalanced": True,
                          "types": {"structural": structural, "semantic": "attr", "detailed": structural},
                          "groups": {"global": group, "local": None}}
    questions["299"] = {**questions["201"], "isBalanced": False}  # unbalanced: never scored
    _json(os.path.join(data, "testdev_balanced_questions.json"), questions)
    for image in ("img1", "img2"):
        _image(os.path.join(data, "images", f"{image}.jpg"))


def make_textvqa(root: str) -> None:
    base = os.path.join(root, "textvqa")
    rows = [{"question_id": 34602, "image_id": "a1", "question": "what brand is this?", "ocr_tokens": ["nokia", "3310"],
             "answers": ["nokia"] * 7 + ["Nokia phone", "nokia", "unanswerable"]},
            {"question_id": 34603, "image_id": "a2", "question": "how many items?", "ocr_tokens": [],
             "answers": ["two"] * 2 + ["2"] * 2 + ["3"] * 6},
            {"question_id": 34604, "image_id": "a2", "question": "what is written?", "ocr_tokens": ["stop"],
             "answers": ["stop"] * 10}]
    _json(os.path.join(base, "TextVQA_0.5.1_val.json"), {"dataset_name": "textvqa", "dataset_type": "val",
                                                         "data": rows})
    for image in ("a1", "a2"):
        _image(os.path.join(base, "train_images", f"{image}.jpg"))


def make_vizwiz(root: str) -> None:
    base = os.path.join(root, "vizwiz")

    def answers(*pairs):
        out = []
        for text, n in pairs:
            out += [{"answer": text, "answer_confidence": "yes"}] * n
        return out

    val = [{"image": "VizWiz_val_00000000.jpg", "question": "What is this?", "answer_type": "unanswerable",
            "answerable": 0, "answers": answers(("unanswerable", 8), ("unsuitable", 2))},
           {"image": "VizWiz_val_00000001.jpg", "question": "Is it on?", "answer_type": "yes/no", "answerable": 1,
            "answers": answers(("yes", 10))},
           {"image": "VizWiz_val_00000002.jpg", "question": "How many coins?", "answer_type": "number",
            "answerable": 1, "answers": answers(("3", 6), ("three", 2), ("4", 2))},
           {"image": "VizWiz_val_00000003.jpg", "question": "What color is the shirt?", "answer_type": "other",
            "answerable": 1, "answers": answers(("blue", 5), ("navy blue", 5))}]
    test = [{"image": "VizWiz_test_00000000.jpg", "question": "What is this?"},
            {"image": "VizWiz_test_00000001.jpg", "question": "What does it say?"}]
    _json(os.path.join(base, "val.json"), val)
    _json(os.path.join(base, "test.json"), test)
    for row in val:
        _image(os.path.join(base, "val", row["image"]))
    for row in test:
        _image(os.path.join(base, "test", row["image"]))


def make_mmvet(root: str) -> None:
    base = os.path.join(root, "mm-vet")
    data = {"v1_0": {"imagename": "v1_0.png", "capability": ["ocr", "math"], "question": "What is 2+3?",
                     "answer": "5"},
            "v1_1": {"imagename": "v1_1.png", "capability": ["rec"], "question": "What is shown?",
                     "answer": "square <OR> box"},
            "v1_2": {"imagename": "v1_2.png", "capability": ["rec", "know", "gen"],
                     "question": "Describe the picture.", "answer": "a red square"}}
    _json(os.path.join(base, "mm-vet.json"), data)
    for row in data.values():
        _image(os.path.join(base, "images", row["imagename"]))


MAKERS = {"mme": make_mme, "gqa": make_gqa, "textvqa": make_textvqa, "vizwiz": make_vizwiz, "mmvet": make_mmvet}


def make_all(root: str) -> None:
    for make in MAKERS.values():
        make(root)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default="playground/data/eval")
    make_all(ap.parse_args().root)
