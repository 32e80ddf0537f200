"""TextVQA val: VQA soft accuracy with the EvalAI normaliser; prompts with or without OCR reference tokens.

Layout: playground/data/eval/textvqa/TextVQA_0.5.1_val.json (official, {"data": [...]}) and train_images/<image_id>.jpg;
OCR tokens from an entry's own "ocr_tokens", else from TextVQA_Rosetta_OCR_v0.2_val.json beside it.
LLaVA-1.5's prompt (its `llava_textvqa_val_v051_ocr.jsonl`): the question with its first letter capitalised (as
lmms-eval's TextVQA task does) + "\\nReference OCR token: " + the tokens as released (case kept, comma-separated) +
the short-answer instruction. Ids are LLaVA's: the image id, shared by the questions of an image, so answers are
keyed as LLaVA's eval_textvqa.py keys them: (image id, the prompt's first line lower-cased).
"""

from __future__ import annotations

import json
import os

from llava.eval.benchmarks.common import (
    SHORT_ANSWER,
    missing_answers,
    pct,
    question_in_prompt,
    question_row,
    read_answers,
    require,
    write_questions,
)
from llava.eval.normalize import vqa_accuracy

ANNOTATIONS = "TextVQA_0.5.1_val.json"
OCR = "TextVQA_Rosetta_OCR_v0.2_val.json"
OCR_URL = "https://dl.fbaipublicfiles.com/textvqa/data/TextVQA_Rosetta_OCR_v0.2_val.json"


def load(root: str, with_ocr: bool = False) -> list[dict]:
    """The val questions; with_ocr: each with its OCR tokens, or a FileNotFoundError naming the file to fetch."""
    path = require(os.path.join(root, "textvqa", ANNOTATIONS), "TextVQA annotations")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)["data"]
    if with_ocr and any("ocr_tokens" not in row for row in data):
        ocr_path = os.path.join(root, "textvqa", OCR)
        if not os.path.exists(ocr_path):
            raise FileNotFoundError(f"{path} has no OCR tokens and {ocr_path} is missing: download {OCR_URL} there "
                                    "(or set OCR=0 for prompts without reference OCR tokens)")
        with open(ocr_path, encoding="utf-8") as f:
            ocr = {row["image_id"]: row["ocr_tokens"] for row in json.load(f)["data"]}
        lacking = sorted({row["image_id"] for row in data if "ocr_tokens" not in row and row["image_id"] not in ocr})
        if lacking:
            raise ValueError(f"{ocr_path} has no OCR tokens for {len(lacking)} val images (e.g. {lacking[:3]}): "
                             f"is it the val file? ({OCR_URL})")
        for row in data:
            row.setdefault("ocr_tokens", ocr[row["image_id"]])
    return data


def prompt(question: str, ocr_tokens: list[str] | None) -> str:
    text = question.capitalize()
    if ocr_tokens is not None:
        text += "\nReference OCR token: " + ", ".join(ocr_tokens)
    return f"{text}\n{SHORT_ANSWER}"


def convert(root: str, out: str, with_ocr: bool = True) -> int:
    return write_questions((question_row(row["image_id"], f"{row['image_id']}.jpg",
                                         prompt(row["question"], row["ocr_tokens"] if with_ocr else None), "default")
                            for row in load(root, with_ocr)), out)


def key(row: dict) -> tuple[str, str]:
    return str(row["image_id"]), row["question"].lower()


def answer_key(row: dict) -> tuple[str, str]:
    return str(row["question_id"]), question_in_prompt(row["prompt"]).lower()


def score(root: str, answers_file: str) -> dict:
    data = load(root)
    answers = read_answers(answers_file, answer_key)
    missing_answers([key(row) for row in data], answers, "TextVQA")
    accs = [vqa_accuracy(answers[key(row)], row["answers"]) for row in data]
    return {"benchmark": "textvqa", "accuracy": pct(sum(accs) / len(accs)), "questions": len(accs)}


def markdown(m: dict) -> str:
    return f"| TextVQA accuracy | questions |\n|---|---|\n| {m['accuracy']:.2f} | {m['questions']} |"
