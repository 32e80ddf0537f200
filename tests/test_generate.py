"""Generation writes one answer per question, and a stopped or killed run resumes without duplicates."""

import json

import pytest

from llava.eval.benchmarks import gqa
from llava.eval.generate import answered_ids, chunk, read_questions, run
from llava.model.builder import load_model
from tests.eval_fixtures import make_gqa


@pytest.fixture(scope="module")
def model():
    return load_model("tiny")


def lines(path):
    return [json.loads(line) for line in open(path)]


def test_stop_and_resume_answers_each_question_once(tmp_path, model):
    make_gqa(str(tmp_path))
    qfile = tmp_path / "questions.jsonl"
    gqa.convert(str(tmp_path), str(qfile))
    questions = read_questions(str(qfile))
    out = tmp_path / "answers.jsonl"
    m, tok, ip = model
    kw = dict(image_folder=str(tmp_path / "gqa" / "data" / "images"), batch_size=3, max_new_tokens=4, progress=False)
    assert run(m, tok, ip, questions, str(out), limit=2, **kw) == 2  # stopped after 2 items
    with open(out, "a") as f:
        f.write('{"question_id": "203", "text": "half a li')  # killed mid-write
    assert answered_ids(str(out)) == {"201", "202"}
    assert run(m, tok, ip, questions, str(out), **kw) == len(questions) - 2
    rows = lines(out)
    assert sorted(r["question_id"] for r in rows) == sorted(q["question_id"] for q in questions)
    assert run(m, tok, ip, questions, str(out), **kw) == 0  # nothing left to do
    assert set(rows[0]) == {"question_id", "prompt", "text", "model_id", "metadata"}


def test_batched_equals_one_by_one(tmp_path, model):
    """Left padding must not change greedy answers."""
    make_gqa(str(tmp_path))
    qfile = tmp_path / "q.jsonl"
    gqa.convert(str(tmp_path), str(qfile))
    questions = read_questions(str(qfile))
    m, tok, ip = model
    kw = dict(image_folder=str(tmp_path / "gqa" / "data" / "images"), max_new_tokens=6, progress=False)
    run(m, tok, ip, questions, str(tmp_path / "batched.jsonl"), batch_size=4, **kw)
    run(m, tok, ip, questions, str(tmp_path / "single.jsonl"), batch_size=1, **kw)
    assert [r["text"] for r in lines(tmp_path / "batched.jsonl")] == [r["text"] for r in lines(tmp_path / "single.jsonl")]


def test_chunks_cover_everything_once():
    rows = list(range(10))
    parts = [chunk(rows, 3, i) for i in range(3)]
    assert sum(parts, []) == rows
