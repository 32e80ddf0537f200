"""Helpers shared by the benchmark converters and scorers."""

from __future__ import annotations

import json
import os

SHORT_ANSWER = "Answer the question using a single word or phrase."  # LLaVA-1.5's short-answer instruction


def write_jsonl(rows, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    os.replace(tmp, path)


def read_answers(path: str) -> dict:
    """question_id -> generated text, from an answers JSONL written by llava.eval.generate."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"answers file {path} not found; run llava.eval.generate first")
    out = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: malformed JSON at line {lineno}: {e.msg}") from e
            out[row["question_id"]] = row["text"]
    return out


def require(path: str, what: str) -> str:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found at {path} (see LLaVA's Evaluation.md for the layout)")
    return path


def missing_answers(expected, answers: dict, name: str):
    missing = [q for q in expected if q not in answers]
    if missing:
        raise ValueError(f"{name}: {len(missing)} questions have no answer (e.g. {missing[:3]}); "
                         "re-run generation (it resumes) before scoring")


def pct(x: float) -> float:
    return round(100.0 * x, 2)
