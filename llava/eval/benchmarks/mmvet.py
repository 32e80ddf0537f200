"""MM-Vet: open-ended answers graded 0.0-1.0 by an LLM judge; scores per capability (rec, ocr, know, gen, spat,
math) and in total, in percent.

Layout: playground/data/eval/mm-vet/mm-vet.json ({"v1_0": {"imagename", "capability", "question", "answer"}, ...})
and images/. LLaVA-1.5 asks MM-Vet questions as they are (no short-answer instruction) and lets answers run to 1024
new tokens. Grading is MM-Vet's official protocol as lmms-eval runs it (mmvet_grader.py).
"""

from __future__ import annotations

import json
import os

from llava.eval.benchmarks import mmvet_grader as grader
from llava.eval.benchmarks.common import missing_answers, pct, read_answers, require, unanswered_ids
from llava.eval.jsonl import write_jsonl
from llava.eval.judge import Judge

CAPABILITIES = ["rec", "ocr", "know", "gen", "spat", "math"]


def load(root: str) -> dict:
    path = require(os.path.join(root, "mm-vet", "mm-vet.json"), "MM-Vet questions")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def convert(root: str, out: str) -> int:
    data = load(root)
    write_jsonl(({"question_id": qid, "image": row["imagename"], "category": ",".join(row["capability"]),
                  "text": row["question"]} for qid, row in data.items()), out)
    return len(data)


def score(root: str, answers_file: str, cache_path: str | None = None, judge: Judge | None = None) -> dict:
    data = load(root)
    answers = read_answers(answers_file)
    missing_answers(data, answers, "MM-Vet")
    grader.official_prompt()  # before any judge is asked: lmms-eval must be installed
    judge = judge or Judge(cache_path=cache_path or answers_file + ".judge_cache.jsonl")
    unanswered = set(unanswered_ids(answers_file))
    grades, unparseable, cached = {}, [], 0
    for qid, row in data.items():
        if qid in unanswered:  # image missing at generation: 0, and never sent to the judge
            grades[qid] = 0.0
            continue
        result = judge.grade(grader.query(row["question"], row["answer"], answers[qid]), grader.parse,
                             grader.TEMPERATURES, grader.MAX_TOKENS)
        cached += result["cached"]
        if result["score"] is None:
            unparseable.append(qid)  # counted and reported; graded 0.0 as lmms-eval does after its retries
        grades[qid] = result["score"] or 0.0
    per_cap = {}
    for cap in CAPABILITIES:
        values = [grades[q] for q, row in data.items() if cap in row["capability"]]
        per_cap[cap] = pct(sum(values) / len(values)) if values else None
    return {"benchmark": "mmvet", **per_cap, "total": pct(sum(grades.values()) / len(grades)),
            "questions": len(grades), "judge_model": judge.model,
            "grader": f"{grader.grader_version()} MM_VET_PROMPT", "cached_grades": cached,
            "unparseable_grades": unparseable, "grades": grades}


def markdown(m: dict) -> str:
    cells = [m[c] for c in CAPABILITIES] + [m["total"]]
    return ("| rec | ocr | know | gen | spat | math | total |\n|---|---|---|---|---|---|---|\n| "
            + " | ".join("n/a" if c is None else f"{c:.1f}" for c in cells) + " |")
