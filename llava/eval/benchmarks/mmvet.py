"""MM-Vet: open-ended answers graded 0.0-1.0 by an LLM judge; scores per capability (rec, ocr, know, gen, spat,
math) and in total, in percent.

Layout: playground/data/eval/mm-vet/mm-vet.json ({"v1_0": {"imagename", "capability", "question", "answer"}, ...})
and images/. LLaVA-1.5 asks MM-Vet questions as they are (no short-answer instruction).
"""

from __future__ import annotations

import json
import os

from llava.eval.benchmarks.common import missing_answers, pct, read_answers, require, unanswered_ids
from llava.eval.jsonl import write_jsonl
from llava.eval.judge import Judge

CAPABILITIES = ["rec", "ocr", "know", "gen", "spat", "math"]

# The grading instruction and examples, written for this project after MM-Vet's few-shot design.
GRADING_PROMPT = """You grade answers that an AI model gave to questions about images.
Compare the model answer with the ground truth and give a correctness score from 0.0 (wrong) to 1.0 (fully right)
in steps of 0.1; partly right answers get partial credit. In a ground truth, <AND> joins parts that must all be
present for full credit, and <OR> separates alternatives of which any one is enough.
Reply with the score only.

Question | Ground truth | Model answer | Score
How many apples are on the table? | 3 | There are three apples on the table. | 1.0
What values of x solve the equation? | -1 <AND> -5 | x = -1 | 0.5
What values of x solve the equation? | -1 <AND> -5 | The solutions are x = -5 and x = -1. | 1.0
Which city is shown in the photo? | Paris <OR> Paris, France | This is London, near the river. | 0.0
What is the man holding, and what color is it? | umbrella <AND> red | He holds a blue umbrella. | 0.5
What does the sign say? | Stop | The sign reads "STOP" in white letters. | 1.0
{question} | {ground_truth} | {answer} |"""


def load(root: str) -> dict:
    path = require(os.path.join(root, "mm-vet", "mm-vet.json"), "MM-Vet questions")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def convert(root: str, out: str) -> int:
    data = load(root)
    write_jsonl(({"question_id": qid, "image": row["imagename"], "category": ",".join(row["capability"]),
                  "text": row["question"]} for qid, row in data.items()), out)
    return len(data)


def grading_prompt(question: str, ground_truth: str, answer: str) -> str:
    one_line = " ".join(answer.split())  # the table row must stay one line
    return GRADING_PROMPT.format(question=" ".join(question.split()), ground_truth=ground_truth, answer=one_line)


def score(root: str, answers_file: str, cache_path: str | None = None, judge: Judge | None = None) -> dict:
    data = load(root)
    answers = read_answers(answers_file)
    missing_answers(data, answers, "MM-Vet")
    judge = judge or Judge(cache_path=cache_path or answers_file + ".judge_cache.jsonl")
    unanswered = set(unanswered_ids(answers_file))
    grades, unparseable, cached = {}, [], 0
    for qid, row in data.items():
        if qid in unanswered:  # image missing at generation: 0, and never sent to the judge
            grades[qid] = 0.0
            continue
        result = judge.grade(grading_prompt(row["question"], row["answer"], answers[qid]))
        cached += result["cached"]
        if result["score"] is None:
            unparseable.append(qid)  # counted and reported; graded 0.0 as MM-Vet does after its retries
        grades[qid] = result["score"] or 0.0
    per_cap = {}
    for cap in CAPABILITIES:
        values = [grades[q] for q, row in data.items() if cap in row["capability"]]
        per_cap[cap] = pct(sum(values) / len(values)) if values else None
    return {"benchmark": "mmvet", **per_cap, "total": pct(sum(grades.values()) / len(grades)),
            "questions": len(grades), "judge_model": judge.model, "cached_grades": cached,
            "unparseable_grades": unparseable, "grades": grades}


def markdown(m: dict) -> str:
    cells = [m[c] for c in CAPABILITIES] + [m["total"]]
    return ("| rec | ocr | know | gen | spat | math | total |\n|---|---|---|---|---|---|---|\n| "
            + " | ".join("n/a" if c is None else f"{c:.1f}" for c in cells) + " |")
