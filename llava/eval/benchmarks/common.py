"""Helpers shared by the benchmark converters and scorers."""

from __future__ import annotations

import os

from llava.constants import SHORT_ANSWER  # noqa: F401 (re-exported for the scorers)
from llava.eval.jsonl import read_jsonl

ANSWER_TYPES = {"question_id": (str, int), "text": (str,)}  # what llava.eval.generate writes


def read_answers(path: str) -> dict:
    """question_id -> generated text, from an answers JSONL written by llava.eval.generate."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"answers file {path} not found; run llava.eval.generate first")
    return {row["question_id"]: row["text"] for row in read_jsonl(path, required=("question_id", "text"),
                                                                     types=ANSWER_TYPES)}


def unanswered_ids(path: str) -> list:
    """Questions that llava.eval.generate --skip-missing-images recorded as unanswered (text "", never right)."""
    return [row["question_id"] for row in read_jsonl(path, required=("question_id",), types=ANSWER_TYPES)
            if row.get("unanswered")]


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
