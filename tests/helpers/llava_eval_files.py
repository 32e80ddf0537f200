"""LLaVA-1.5's evaluation files (tests/fixtures/llava_eval: rows transcribed from haotian-liu/LLaVA) and raw
releases holding the same questions, so a test can convert the release and compare with LLaVA's lines, run the
scripts on LLaVA's files, and score LLaVA's published answers."""

from __future__ import annotations

import json
import os
import shutil

from PIL import Image

LLAVA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "llava_eval")
QUESTION_FILES = {"mme": "MME/llava_mme.jsonl", "gqa": "gqa/llava_gqa_testdev_balanced.jsonl",
                  "textvqa": "textvqa/llava_textvqa_val_v051_ocr.jsonl", "vizwiz": "vizwiz/llava_test.jsonl",
                  "mmvet": "mm-vet/llava-mm-vet.jsonl"}
ANSWER_FILES = {"mme": "MME/answers/llava-v1.5-13b.jsonl", "gqa": "gqa/answers/llava-v1.5-13b.jsonl",
                "textvqa": "textvqa/answers/llava-v1.5-13b.jsonl", "vizwiz": "vizwiz/answers/llava-v1.5-13b.jsonl",
                "mmvet": "mm-vet/answers/llava-v1.5-13b.jsonl"}
IMAGES = {"mme": "MME/MME_Benchmark_release_version", "gqa": "gqa/data/images", "textvqa": "textvqa/train_images",
          "vizwiz": "vizwiz/test", "mmvet": "mm-vet/images"}
TEXTVQA_OCR = {"003a8ae2ef43b901": ["DAKOTA", "DIGITAL", "Single-Use", "Camera", "Pire", "digitat"],
               "831bcec304a17054": ("IGNET, N, MORANGIE, MORANGIE, MORANGIE, CHLANDS, ISLAY, OWMOR, OR, SINGL, MALT, "
                                    "WHISKY, SINGLE, MALT, HISKY, SCOTCH, WHITS, LASANTA, NON, CHILL-F, MATURED, RARE, "
                                    "SHERRY, CASKS, BatckK, Reliasen, CAKTYPE, STFILLBOURSON, BATCHNS, TOUE, CISTILLER, "
                                    "55.6%ac, LONGHO, ATOL, BLAY, SCORLAND, AGED, 10").split(", "),
               "97b1112b17015396": []}


def llava_lines(name: str) -> list[str]:
    with open(os.path.join(LLAVA, QUESTION_FILES[name]), encoding="utf-8") as f:
        return f.read().splitlines()


def _image(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (40, 32), (90, 120, 200)).save(path)


def _json(path: str, obj) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def make_release(root: str) -> None:
    """The benchmarks' own releases (layouts as LLaVA's Evaluation.md), holding exactly the questions of the fixtures,
    MME's as released: " Please answer yes or no." after one space or, as some of MME's lines have it, two."""
    mme = os.path.join(root, IMAGES["mme"])
    _image(os.path.join(mme, "code_reasoning", "0020.png"))
    _write(os.path.join(mme, "code_reasoning", "0020.txt"),
           "Is a python code shown in the picture? Please answer yes or no.\tYes\n"
           "Is a c++ code shown in the picture? Please answer yes or no.\tNo\n")
    _image(os.path.join(mme, "artwork", "images", "14777.jpg"))
    _write(os.path.join(mme, "artwork", "questions_answers_YN", "14777.txt"),
           "Does this artwork belong to the type of religious? Please answer yes or no.\tYes\n"
           "Does this artwork belong to the type of historical?  Please answer yes or no.\tNo\n")
    gqa = {"201307251": ("n161313", "Is it overcast?", "no", "verify", None),
           "201640614": ("n235859", "Who is wearing the dress?", "woman", "query", "person"),
           "202225914": ("n336443", "Does the utensil on top of the table look clean and black?", "yes", "logical",
                         None)}
    _json(os.path.join(root, "gqa", "data", "testdev_balanced_questions.json"),
          {qid: {"imageId": img, "question": q, "answer": a, "isBalanced": True,
                 "types": {"structural": s, "semantic": "attr", "detailed": s}, "groups": {"global": g, "local": None}}
           for qid, (img, q, a, s, g) in gqa.items()})
    for img, *_ in gqa.values():
        _image(os.path.join(root, IMAGES["gqa"], f"{img}.jpg"))
    textvqa = [(34602, "003a8ae2ef43b901", "what is the brand of this camera?", ["dakota"] * 8 + ["dakota digital"] * 2),
               (34605, "831bcec304a17054", "what brand liquor is on the right?", ["bowmore"] * 10),
               (34606, "831bcec304a17054", "how long has the drink on the right been aged?", ["10 years"] * 9 + ["10"]),
               (34700, "97b1112b17015396", "whats the lowest number yard line that you can see?", ["3"] * 4 + ["30"] * 6)]
    _json(os.path.join(root, "textvqa", "TextVQA_0.5.1_val.json"),
          {"dataset_name": "textvqa", "dataset_type": "val",
           "data": [{"question_id": qid, "image_id": img, "question": q, "answers": a} for qid, img, q, a in textvqa]})
    _json(os.path.join(root, "textvqa", "TextVQA_Rosetta_OCR_v0.2_val.json"),
          {"data": [{"image_id": img, "ocr_tokens": tokens} for img, tokens in TEXTVQA_OCR.items()]})
    for img in TEXTVQA_OCR:
        _image(os.path.join(root, IMAGES["textvqa"], f"{img}.jpg"))
    vizwiz = ["What is this? and what color is it?", "What is this?",
              "Has this oven gotten up to four hundred fifty degrees fahrenheit yet?", "What is this?", "What is this?",
              "What kind of key is this?", "What does it say on here?", "What is this? "]
    _json(os.path.join(root, "vizwiz", "test.json"),
          [{"image": f"VizWiz_test_{i:08d}.jpg", "question": q} for i, q in enumerate(vizwiz)])
    for i in range(len(vizwiz)):
        _image(os.path.join(root, IMAGES["vizwiz"], f"VizWiz_test_{i:08d}.jpg"))
    mmvet = {"v1_0": ("v1_0.png", ["ocr", "math"], "What is x in the equation?", "-1 <AND> -5"),
             "v1_1": ("v1_1.png", ["ocr", "math"], "What is d in the last equation?", "1.25=5/4"),
             "v1_2": ("v1_1.png", ["ocr", "math"], "What is x in the equation?", "0.5=1/2"),
             "v1_7": ("v1_7.png", ["ocr", "math"], 'Find the pattern of how the "X" operator is redefined, and answer '
                      "the given equation in the image.", "3")}
    _json(os.path.join(root, "mm-vet", "mm-vet.json"),
          {k: {"imagename": img, "capability": cap, "question": q, "answer": a} for k, (img, cap, q, a) in mmvet.items()})
    for img, *_ in mmvet.values():
        _image(os.path.join(root, IMAGES["mmvet"], img))


def copy_question_files(root: str) -> None:
    """LLaVA's question files where its eval.zip puts them."""
    for rel in QUESTION_FILES.values():
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        shutil.copy(os.path.join(LLAVA, rel), os.path.join(root, rel))
