"""The public downloads of the paper's three training sets, in their official layouts at toy size, with some images
deliberately absent, for the recipe tests and for trying `scripts/paper/table.sh` on CPU.

python -m tests.helpers.recipe_fixtures --root playground/data/paper_raw

`make_raw(root)` returns what a correct recipe must find: records per task and source, absent images per source.
"""

from __future__ import annotations

import argparse
import csv
import json
import os

from PIL import Image

SHORT = "Answer the question using a single word or phrase."


def _image(root: str, relative: str, i: int) -> None:
    path = os.path.join(root, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (24 + i % 5, 20), ((37 * i) % 256, (91 * i) % 256, 120)).save(path, format="JPEG")


def _json(root: str, relative: str, obj) -> str:
    path = os.path.join(root, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)
    return path


def _turns(*pairs) -> list[dict]:
    out = []
    for q, a in pairs:
        out += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
    return out


def make_coco(root: str, n: int = 40) -> dict[int, str]:
    """COCO ids 1..n: odd ids as train2017/<id>.jpg, even as train2014/COCO_train2014_<id>.jpg, every 10th absent."""
    where = {}
    for image_id in range(1, n + 1):
        if image_id % 10 == 0:
            continue
        relative = (f"coco/train2017/{image_id:012d}.jpg" if image_id % 2 else
                    f"coco/train2014/COCO_train2014_{image_id:012d}.jpg")
        _image(root, relative, image_id)
        where[image_id] = relative
    return where


def make_instruct(root: str) -> dict:
    """conversation_58k.json (24 records over ids 1..24) and llava_instruct_150k.json (30 records over 1..30)."""
    conv = [{"id": f"{i:012d}", "image": f"{i:012d}.jpg",
             "conversations": _turns((f"<image>\nWhat is in picture {i}?", f"A picture numbered {i}."),
                                     ("Anything else?", "Nothing else."))} for i in range(1, 25)]
    _json(root, "instruct/conversation_58k.json", conv)
    full = [{"id": f"{i:012d}", "image": f"{i:012d}.jpg",
             "conversations": _turns(("<image>\nDescribe the image.", f"Image {i} shows a colour."))}
            for i in range(1, 31)]
    _json(root, "instruct/llava_instruct_150k.json", full)
    return {"conversation58k": {"present": sum(1 for i in range(1, 25) if i % 10), "absent": 2}}


def make_vqav2(root: str) -> dict:
    """Images 1..12 with 3 questions each (question ids out of order on disk); image 10 is absent."""
    questions, annotations = [], []
    for image_id in range(1, 13):
        for k in (2, 0, 1):
            qid = image_id * 1000 + k
            questions.append({"image_id": image_id, "question": f"Question {k} about {image_id}?", "question_id": qid})
            annotations.append({"question_id": qid, "image_id": image_id, "multiple_choice_answer": f"answer {k}",
                                "answers": [{"answer": f"answer {k}", "answer_confidence": "yes", "answer_id": 1}],
                                "answer_type": "other", "question_type": "what"})
    _json(root, "vqav2/v2_OpenEnded_mscoco_train2014_questions.json",
          {"data_subtype": "train2014", "questions": questions})
    _json(root, "vqav2/v2_mscoco_train2014_annotations.json", {"data_subtype": "train2014", "annotations": annotations})
    return {"images": 12, "absent": 1}


def make_vqg(root: str) -> dict:
    """Two CSVs: train (rows for images 1..8, image 20 absent) and val (images 31..33, 3 questions each)."""
    os.makedirs(os.path.join(root, "vqg"), exist_ok=True)
    rows = {"train": [(i, [f"What is going on in scene {i}?", f"Who made thing {i}?"]) for i in range(1, 9)]
            + [(20, ["Why is it here?", "Where is it?"])],
            "val": [(i, [f"Is picture {i} old?", f"How big is {i}?", f"What colour is {i}?"]) for i in (31, 33, 35)]}
    for split, items in rows.items():
        with open(os.path.join(root, "vqg", f"coco_{split}_all.csv"), "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["image_id", "image_url", "questions", "ratings"])
            for image_id, qs in items:
                writer.writerow([image_id, f"http://images.cocodataset.org/x/{image_id}.jpg", "---".join(qs),
                                 "---".join("3" for _ in qs)])
    return {"questions": 2 * 8 + 3 * 3, "absent_rows": 1}


def make_mix665k(root: str) -> dict:
    """One or more records of every source's shape, an absent OCR-VQA image; returns {source: count} of present."""
    records, present, absent = [], {}, {}

    def add(source, record, image=None, exists=True):
        if image:
            record["image"] = image
            if exists:
                _image(root, image, len(records))
        records.append(record)
        bucket = present if exists else absent
        bucket[source] = bucket.get(source, 0) + 1

    add("llava", {"id": "000000000041", "conversations": _turns(("What is the man doing?\n<image>", "He is surfing."),
                                                                ("Why?", "For fun."))},
        "coco/train2017/000000000041.jpg")
    add("vqav2", {"id": "000000000042", "conversations": _turns((f"<image>\nWhat color?\n{SHORT}", "Red"),
                                                                (f"How many?\n{SHORT}", "2"),
                                                                (f"Is it day?\n{SHORT}", "Yes"))},
        "coco/train2017/000000000042.jpg")
    add("okvqa", {"id": "000000000043", "conversations": _turns((f"<image>\nWhat sport is this?\n{SHORT}", "Tennis"))},
        "coco/train2017/000000000043.jpg")
    add("a-okvqa", {"id": "1a2b3c", "conversations": _turns((
        "<image>\nWhat is the man holding?\nA. a bat\nB. a cup\nC. a ball\nD. a dog\n"
        "Answer with the option's letter from the given choices directly.", "A"))}, "coco/train2017/000000000044.jpg")
    add("refcoco", {"id": "000000000045", "conversations": _turns((
        "<image>\nPlease provide a short description for this region: [0.1, 0.2, 0.5, 0.6]", "Man in red."),
        ("Please provide the bounding box coordinate of the region this sentence describes: left dog.",
         "[0.0, 0.1, 0.3, 0.4]"))}, "coco/train2017/000000000045.jpg")
    add("refcoco", {"id": "000000000046", "conversations": _turns((
        "<image>\nPlease provide the bounding box coordinate of the region this sentence describes: a cup.",
        "[0.2, 0.2, 0.4, 0.5]"))}, "coco/train2017/000000000046.jpg")
    add("gqa", {"id": 2354786, "conversations": _turns((f"<image>\nIs the sky blue?\n{SHORT}", "Yes"))},
        "gqa/images/2354786.jpg")
    add("ocr_vqa", {"id": "140031996", "conversations": _turns(("<image>\nWho wrote this book?", "Jane Doe"),
                                                               (f"Is this a cookbook?\n{SHORT}", "No"))},
        "ocr_vqa/images/140031996.jpg")
    add("ocr_vqa", {"id": "0380818094", "conversations": _turns(("<image>\nWhat is the title?", "A Title"))},
        "ocr_vqa/images/0380818094.jpg", exists=False)
    add("textcaps", {"id": "011e7e629fb9ae7b", "conversations": _turns((
        "<image>\nProvide a one-sentence caption for the provided image.", "A sign that reads stop."))},
        "textvqa/train_images/011e7e629fb9ae7b.jpg")
    add("vg", {"id": "VG_100K_123", "conversations": _turns((
        "<image>\nPlease provide a short description for this region: [0.1, 0.1, 0.2, 0.2]", "A window."))},
        "vg/VG_100K/123.jpg")
    add("vg", {"id": "VG_100K_2_456", "conversations": _turns((
        "<image>\nPlease provide the bounding box coordinate of the region this sentence describes: a tree.",
        "[0.3, 0.3, 0.5, 0.9]"))}, "vg/VG_100K_2/456.jpg")
    add("sharegpt", {"id": "i6IyJda_0", "model": "", "conversations": _turns(("Write a haiku.", "Leaves fall down."),
                                                                              ("Another.", "Snow."))})
    add("sharegpt", {"id": "Q2ZsJ3f_12", "model": "gpt-4", "conversations": _turns(("Hi", "Hello! How can I help?"))})
    _json(root, "llava_v1_5_mix665k.json", records)
    return {"present": present, "absent": absent}


def make_raw(root: str) -> dict:
    coco = make_coco(root)
    expected = {"coco": coco, **make_instruct(root), "vqav2": make_vqav2(root), "vqg": make_vqg(root),
                "mix665k": make_mix665k(root)}
    return expected


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default="playground/data/paper_raw")
    make_raw(ap.parse_args().root)
