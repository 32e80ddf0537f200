"""Helpers shared by the benchmark converters and scorers.

Question files follow LLaVA-1.5's `playground/data/eval` files key for key (question_id, image, text, category, in
that order), so a file converted here and the one in LLaVA's eval.zip hold the same line for the same question.
Answer files are LLaVA's too (question_id, prompt, text, answer_id, model_id, metadata). LLaVA's ids repeat (MME: the
image, for both questions of an image; TextVQA: the image id), so scorers key an answer the way LLaVA's own scorers
do: by id and the question read back from the prompt where ids repeat.
"""

from __future__ import annotations

import os

from llava.constants import SHORT_ANSWER  # noqa: F401 (re-exported for the converters)
from llava.eval.jsonl import read_jsonl, write_jsonl

ANSWER_TYPES = {"question_id": (str, int), "text": (str,), "prompt": (str,)}  # what llava.eval.generate writes


def question_row(question_id, image: str, text: str, category: str) -> dict:
    """One line of a question file, keys in LLaVA's order."""
    return {"question_id": question_id, "image": image, "text": text, "category": category}


def write_questions(rows, out: str) -> int:
    rows = list(rows)
    write_jsonl(rows, out)
    return len(rows)


def read_answer_rows(path: str) -> list[dict]:
    """The rows of an answers file (ours or LLaVA's); a row without a prompt reads as prompt ""."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"answers file {path} not found; run llava.eval.generate first")
    rows = read_jsonl(path, required=("question_id", "text"), types=ANSWER_TYPES)
    for row in rows:
        row.setdefault("prompt", "")
    return rows


def read_answers(path: str, key=lambda row: row["question_id"]) -> dict:
    """key(row) -> generated text. With repeated keys the last row wins, as in LLaVA's scorers."""
    return {key(row): row["text"] for row in read_answer_rows(path)}


def question_in_prompt(prompt: str) -> str:
    """The question a prompt asks: its first line, as LLaVA's TextVQA scorer reads it (MME's questions are one line
    too)."""
    return prompt.split("\n")[0]


def unanswered_ids(path: str) -> list:
    """Questions that llava.eval.generate --skip-missing-images recorded as unanswered (text "", never right)."""
    return [row["question_id"] for row in read_answer_rows(path) if row.get("unanswered")]


def generation_settings(path: str) -> dict:
    """How the answers were generated (dtype, batch size, conversation template), as llava.eval.generate records
    them in each row's metadata; a setting that varies across rows lists every value, a file of LLaVA's (metadata {})
    gives {}."""
    seen: dict[str, set] = {}
    for row in read_answer_rows(path):
        for key in ("dtype", "batch_size", "conv_mode"):
            value = (row.get("metadata") or {}).get(key)
            if value is not None:
                seen.setdefault(key, set()).add(value)
    return {k: (next(iter(v)) if len(v) == 1 else sorted(v, key=str)) for k, v in seen.items()}


def require(path: str, what: str) -> str:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found at {path} (see docs/evaluation.md for the layout)")
    return path


def missing_answers(expected, answers: dict, name: str):
    missing = [q for q in expected if q not in answers]
    if missing:
        raise ValueError(f"{name}: {len(missing)} questions have no answer (e.g. {missing[:3]}); the answers file "
                         "is incomplete or was generated from another question file: re-run generation (it resumes) "
                         "before scoring")


def pct(x: float) -> float:
    return round(100.0 * x, 2)
