"""VizWiz VQA: local scoring on val by answer type, and the EvalAI submission file for test-dev.

Layout: playground/data/eval/vizwiz/{val.json, val/, test.json, test/} (official annotation lists:
image, question, answers (10 for val), answer_type, answerable). LLaVA-1.5's prompt (its `llava_test.jsonl`): the
question with its first letter capitalised (as lmms-eval's VizWiz task does), then "respond with 'Unanswerable'" and
the short-answer instruction. Ids are LLaVA's: the question's place in the split's annotation list, images named
relative to the split's folder. Accuracy is VQA soft accuracy with the EvalAI normaliser, averaged per answer type
(unanswerable / yes/no / number / other) and over all questions (the paper's "Average"). The paper's VizWiz columns
follow EvalAI's test-dev breakdown; val is what can be scored here.
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
    read_answer_rows,
    require,
    write_questions,
)
from llava.eval.normalize import normalize_answer, vqa_accuracy

UNANSWERABLE = "When the provided information is insufficient, respond with 'Unanswerable'."
TYPES = ["unanswerable", "yes/no", "number", "other"]


def load(root: str, split: str) -> list[dict]:
    path = require(os.path.join(root, "vizwiz", f"{split}.json"), f"VizWiz {split} annotations")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def convert(root: str, out: str, split: str = "val") -> int:
    return write_questions((question_row(i, r["image"], f"{r['question'].capitalize()}\n{UNANSWERABLE}\n{SHORT_ANSWER}",
                                         "default") for i, r in enumerate(load(root, split))), out)


def answers_by_index(rows: list[dict], answers_file: str, split: str) -> dict[int, str]:
    """{place in the split: reply}. An answer whose prompt asks another question than the annotation at its place
    belongs to another split or file: an error, never a silent mismatch."""
    out = {}
    for row in read_answer_rows(answers_file):
        qid = row["question_id"]
        i = int(qid) if isinstance(qid, int) or str(qid).isdigit() else -1
        if not 0 <= i < len(rows):
            raise ValueError(f"{answers_file}: question_id {qid!r} is not a place in VizWiz {split} "
                             f"(0..{len(rows) - 1}): was it generated from this split's question file?")
        asked = question_in_prompt(row["prompt"]).lower()
        if row["prompt"] and asked != rows[i]["question"].lower():
            raise ValueError(f"{answers_file}: question {qid} asks {asked!r} but VizWiz {split} #{i} "
                             f"({rows[i]['image']}) is {rows[i]['question']!r}: answers from another split or file")
        out[i] = row["text"]
    return out


def score(root: str, answers_file: str, split: str = "val") -> dict:
    rows = load(root, split)
    if not rows or "answers" not in rows[0]:
        raise ValueError(f"VizWiz {split} has no ground-truth answers: score val locally, submit test to EvalAI")
    answers = answers_by_index(rows, answers_file, split)
    missing_answers(range(len(rows)), answers, "VizWiz")
    per_type: dict[str, list[float]] = {t: [] for t in TYPES}
    overall = []
    for i, r in enumerate(rows):
        acc = vqa_accuracy(answers[i], [a["answer"] for a in r["answers"]])
        per_type.setdefault(r.get("answer_type", "other"), []).append(acc)
        overall.append(acc)
    result = {"benchmark": "vizwiz", "split": split, "questions": len(overall),
              "average": pct(sum(overall) / len(overall))}
    for t, values in per_type.items():
        result[t] = pct(sum(values) / len(values)) if values else None
    return result


def submission(root: str, answers_file: str, out: str, split: str = "test") -> int:
    """The EvalAI upload, as LLaVA's convert_vizwiz_for_submission.py writes it: [{"image", "answer": the reply
    through EvalAI's answer processor}] in annotation order."""
    rows = load(root, split)
    answers = answers_by_index(rows, answers_file, split)
    missing_answers(range(len(rows)), answers, "VizWiz")
    result = [{"image": r["image"], "answer": normalize_answer(answers[i])} for i, r in enumerate(rows)]
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return len(result)


def markdown(m: dict) -> str:
    cells = [m[t] for t in TYPES] + [m["average"]]
    return ("| Unanswerable | Yes/No | Number | Other | Average |\n|---|---|---|---|---|\n| "
            + " | ".join("n/a" if c is None else f"{c:.2f}" for c in cells) + f" |\n\nVizWiz split: {m.get('split', 'val')}")
