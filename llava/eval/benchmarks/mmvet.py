"""MM-Vet: open-ended answers graded 0.0-1.0 by an LLM judge; scores per capability (rec, ocr, know, gen, spat,
math) and in total, in percent.

Layout: playground/data/eval/mm-vet/mm-vet.json ({"v1_0": {"imagename", "capability", "question", "answer"}, ...})
and images/. LLaVA-1.5 asks MM-Vet questions as they are (no short-answer instruction) and lets answers run to 1024
new tokens. Ids are LLaVA's (its `llava-mm-vet.jsonl`): the number n of MM-Vet's key "v1_n". Grading is MM-Vet's
official protocol as lmms-eval runs it (mmvet_grader.py); `results` writes the {"v1_n": answer} file that MM-Vet's
own grader reads, as LLaVA's convert_mmvet_for_eval.py does.
"""

from __future__ import annotations

import json
import os

from llava.eval.benchmarks import mmvet_grader as grader
from llava.eval.benchmarks.common import (
    missing_answers,
    pct,
    question_row,
    read_answers,
    require,
    unanswered_ids,
    write_questions,
)
from llava.eval.judge import Judge

CAPABILITIES = ["rec", "ocr", "know", "gen", "spat", "math"]


def load(root: str) -> dict:
    path = require(os.path.join(root, "mm-vet", "mm-vet.json"), "MM-Vet questions")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def number(key: str) -> int | str:
    """MM-Vet's "v1_12" -> LLaVA's question_id 12 (a key of another form stays as it is)."""
    return int(key[3:]) if key.startswith("v1_") and key[3:].isdigit() else key


def mmvet_key(question_id) -> str:
    return f"v1_{question_id}" if isinstance(question_id, int) or str(question_id).isdigit() else str(question_id)


def convert(root: str, out: str) -> int:
    rows = (question_row(number(qid), row["imagename"], row["question"], "conv") for qid, row in load(root).items())
    # LLaVA's file holds MM-Vet's keys in the order image, text, category, question_id
    return write_questions(({k: r[k] for k in ("image", "text", "category", "question_id")} for r in rows), out)


def results(answers_file: str, out: str) -> int:
    """{"v1_n": answer} for MM-Vet's official grader (its notebook or the online evaluator)."""
    answers = read_answers(answers_file, lambda row: mmvet_key(row["question_id"]))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(answers, f, indent=2)
    return len(answers)


def score(root: str, answers_file: str, cache_path: str | None = None, judge: Judge | None = None) -> dict:
    data = load(root)
    answers = read_answers(answers_file, lambda row: mmvet_key(row["question_id"]))
    missing_answers(data, answers, "MM-Vet")
    grader.official_prompt()  # before any judge is asked: lmms-eval must be installed
    judge = judge or Judge(cache_path=cache_path or answers_file + ".judge_cache.jsonl")
    unanswered = {mmvet_key(q) for q in unanswered_ids(answers_file)}
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
