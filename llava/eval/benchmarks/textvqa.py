"""TextVQA val: VQA soft accuracy with the EvalAI normaliser; prompts with or without OCR reference tokens.

Layout: playground/data/eval/textvqa/TextVQA_0.5.1_val.json (official, {"data": [...]}) and train_images/<image_id>.jpg;
OCR tokens from an entry's "ocr_tokens" or from TextVQA_Rosetta_OCR_v0.2_val.json when present.
LLaVA-1.5's prompt (the `_ocr` question file): question + "\\nReference OCR token: a, b, c" + short-answer instruction.
"""

from __future__ import annotations

import json
import os

from llava.eval.benchmarks.common import SHORT_ANSWER, missing_answers, pct, read_answers, require
from llava.eval.jsonl import write_jsonl
from llava.eval.normalize import vqa_accuracy

ANNOTATIONS = "TextVQA_0.5.1_val.json"
OCR = "TextVQA_Rosetta_OCR_v0.2_val.json"


def load(root: str) -> list[dict]:
    path = require(os.path.join(root, "textvqa", ANNOTATIONS), "TextVQA annotations")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)["data"]
    ocr_path = os.path.join(root, "textvqa", OCR)
    if os.path.exists(ocr_path):
        with open(ocr_path, encoding="utf-8") as f:
            ocr = {row["image_id"]: row.get("ocr_tokens", []) for row in json.load(f)["data"]}
        for row in data:
            row.setdefault("ocr_tokens", ocr.get(row["image_id"], []))
    return data


def prompt(question: str, ocr_tokens: list[str] | None) -> str:
    text = question
    if ocr_tokens is not None:
        text += "\nReference OCR token: " + ", ".join(ocr_tokens)
    return f"{text}\n{SHORT_ANSWER}"


def convert(root: str, out: str, with_ocr: bool = True) -> int:
    data = load(root)
    write_jsonl(({"question_id": row["question_id"], "image": f"{row['image_id']}.jpg", "category": "textvqa",
                  "text": prompt(row["question"], row.get("ocr_tokens", []) if with_ocr else None)} for row in data),
                out)
    return len(data)


def score(root: str, answers_file: str) -> dict:
    data = load(root)
    answers = read_answers(answers_file)
    missing_answers([row["question_id"] for row in data], answers, "TextVQA")
    accs = [vqa_accuracy(answers[row["question_id"]], row["answers"]) for row in data]
    return {"benchmark": "textvqa", "accuracy": pct(sum(accs) / len(accs)), "questions": len(accs)}


def markdown(m: dict) -> str:
    return f"| TextVQA accuracy | questions |\n|---|---|\n| {m['accuracy']:.2f} | {m['questions']} |"
