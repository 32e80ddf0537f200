"""VizWiz VQA: local scoring on val by answer type, and the EvalAI submission file for test.

Layout: playground/data/eval/vizwiz/{val.json, val/, test.json, test/} (official annotation lists:
image, question, answers (10 for val), answer_type, answerable). LLaVA-1.5's prompt asks for "Unanswerable" when the
image does not hold the answer. Accuracy is VQA soft accuracy with the EvalAI normaliser, averaged per answer type
(unanswerable / yes/no / number / other) and over all questions (the paper's "Average").
"""

from __future__ import annotations

import json
import os

from llava.eval.benchmarks.common import SHORT_ANSWER, missing_answers, pct, read_answers, require
from llava.eval.jsonl import write_jsonl
from llava.eval.normalize import normalize_answer, vqa_accuracy

UNANSWERABLE = "When the provided information is insufficient, respond with 'Unanswerable'."
TYPES = ["unanswerable", "yes/no", "number", "other"]


def load(root: str, split: str) -> list[dict]:
    path = require(os.path.join(root, "vizwiz", f"{split}.json"), f"VizWiz {split} annotations")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def convert(root: str, out: str, split: str = "val") -> int:
    rows = load(root, split)
    write_jsonl(({"question_id": r["image"], "image": f"{split}/{r['image']}", "category": r.get("answer_type"),
                  "text": f"{r['question']}\n{UNANSWERABLE}\n{SHORT_ANSWER}"} for r in rows), out)
    return len(rows)


def score(root: str, answers_file: str, split: str = "val") -> dict:
    rows = load(root, split)
    if not rows or "answers" not in rows[0]:
        raise ValueError(f"VizWiz {split} has no ground-truth answers: score val locally, submit test to EvalAI")
    answers = read_answers(answers_file)
    missing_answers([r["image"] for r in rows], answers, "VizWiz")
    per_type: dict[str, list[float]] = {t: [] for t in TYPES}
    overall = []
    for r in rows:
        acc = vqa_accuracy(answers[r["image"]], [a["answer"] for a in r["answers"]])
        per_type.setdefault(r.get("answer_type", "other"), []).append(acc)
        overall.append(acc)
    result = {"benchmark": "vizwiz", "questions": len(overall), "average": pct(sum(overall) / len(overall))}
    for t, values in per_type.items():
        result[t] = pct(sum(values) / len(values)) if values else None
    return result


def submission(root: str, answers_file: str, out: str, split: str = "test") -> int:
    """The EvalAI upload: [{"image": ..., "answer": normalised reply}] in annotation order."""
    rows = load(root, split)
    answers = read_answers(answers_file)
    missing_answers([r["image"] for r in rows], answers, "VizWiz")
    result = [{"image": r["image"], "answer": normalize_answer(answers[r["image"]])} for r in rows]
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return len(result)


def markdown(m: dict) -> str:
    cells = [m[t] for t in TYPES] + [m["average"]]
    return ("| Unanswerable | Yes/No | Number | Other | Average |\n|---|---|---|---|---|\n| "
            + " | ".join("n/a" if c is None else f"{c:.2f}" for c in cells) + " |")
