"""GQA test-dev balanced: exact match (lower-cased, trailing period stripped), binary / open, distribution.

Layout: playground/data/eval/gqa/data/testdev_balanced_questions.json (official) and data/images/<imageId>.jpg.
As the official eval: only `isBalanced` questions count; "open" = structural type "query", every other type is
"binary"; distribution = chi-square between gold and predicted answer counts per global question group, weighted
by group size, divided by 100 (lower is better), over questions whose global group is known.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

from llava.eval.benchmarks.common import (
    SHORT_ANSWER,
    missing_answers,
    pct,
    question_row,
    read_answers,
    require,
    write_questions,
)

QUESTIONS = "testdev_balanced_questions.json"


def load(root: str) -> dict:
    path = require(os.path.join(root, "gqa", "data", QUESTIONS), "GQA questions")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def convert(root: str, out: str) -> int:
    """LLaVA's llava_gqa_testdev_balanced.jsonl: the question as released + the short-answer instruction."""
    return write_questions((question_row(qid, f"{q['imageId']}.jpg", f"{q['question']}\n{SHORT_ANSWER}", "default")
                            for qid, q in load(root).items()), out)


def predictions(answers_file: str, out: str) -> int:
    """The predictions file GQA's official eval.py reads, as LLaVA's convert_gqa_for_eval.py writes it:
    [{"questionId", "prediction"}], the reply with trailing periods stripped and lower-cased."""
    rows = [{"questionId": str(qid), "prediction": clean(text)} for qid, text in read_answers(answers_file).items()]
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(rows, f)
    return len(rows)


def clean(text: str) -> str:
    return text.rstrip(".").lower()  # LLaVA's convert_gqa_for_eval.py (its answers are stripped when generated)


def chi_square(gold: dict, predicted: dict) -> float:
    total_score, total = 0.0, 0
    for group, counts in gold.items():
        score = sum((predicted[group].get(ans, 0) - n) ** 2 / n for ans, n in counts.items())
        size = sum(counts.values())
        total_score += score * size
        total += size
    return total_score / total if total else 0.0


def score(root: str, answers_file: str) -> dict:
    questions = load(root)
    answers = read_answers(answers_file, lambda row: str(row["question_id"]))
    balanced = {qid: q for qid, q in questions.items() if q.get("isBalanced", True)}
    missing_answers(balanced, answers, "GQA")
    buckets = {"accuracy": [], "binary": [], "open": []}
    gold_dist: dict = defaultdict(lambda: defaultdict(int))
    pred_dist: dict = defaultdict(lambda: defaultdict(int))
    has_groups = False
    for qid, q in balanced.items():
        predicted, gold = clean(answers[qid]), q["answer"].lower()
        right = float(predicted == gold)
        buckets["accuracy"].append(right)
        buckets["open" if q.get("types", {}).get("structural") == "query" else "binary"].append(right)
        group = (q.get("groups") or {}).get("global")
        if group is not None:
            has_groups = True
            gold_dist[group][gold] += 1
            pred_dist[group][predicted] += 1
    result = {"benchmark": "gqa", "questions": len(balanced)}
    for key, values in buckets.items():
        result[key] = pct(sum(values) / len(values)) if values else None
    result["distribution"] = round(chi_square(gold_dist, pred_dist) / 100, 4) if has_groups else None
    return result


def markdown(m: dict) -> str:
    dist = "n/a" if m["distribution"] is None else f"{m['distribution']:.2f}"
    binary = "n/a" if m["binary"] is None else f"{m['binary']:.2f}"
    open_ = "n/a" if m["open"] is None else f"{m['open']:.2f}"
    return ("| Binary | Open | Accuracy | Distribution (lower is better) | questions |\n|---|---|---|---|---|\n"
            f"| {binary} | {open_} | {m['accuracy']:.2f} | {dist} | {m['questions']} |")
