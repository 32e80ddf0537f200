"""Benchmark scorers on hand-computed cases, over fixtures in the official layouts."""

import json

import pytest

from llava.eval.benchmarks import gqa, mme, textvqa, vizwiz
from llava.eval.jsonl import write_jsonl
from llava.eval.normalize import normalize_answer, soft_scores, vqa_accuracy
from tests.helpers.eval_fixtures import make_gqa, make_mme, make_textvqa, make_vizwiz


def answers_file(tmp_path, mapping, name="answers.jsonl"):
    path = tmp_path / name
    write_jsonl(({"question_id": k, "prompt": "", "text": v, "model_id": "t", "metadata": {}}
                 for k, v in mapping.items()), str(path))
    return str(path)


def answer_questions(tmp_path, bench, replies, name="answers.jsonl", **convert):
    """Answer the converted question file: replies[i] to its i-th question (ids as LLaVA's, prompts as asked)."""
    bench.convert(str(tmp_path), str(tmp_path / "q.jsonl"), **convert)
    questions = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert len(questions) == len(replies)
    write_jsonl(({"question_id": q["question_id"], "prompt": q["text"], "text": r, "model_id": "t", "metadata": {}}
                 for q, r in zip(questions, replies)), str(tmp_path / name))
    return str(tmp_path / name)


@pytest.mark.parametrize("raw,expected", [
    ("Two", "2"), ("a dog.", "dog"), ("The cat", "cat"), ("an apple", "apple"), ("It's red", "it 's red"),
    ("dont", "don't"), ("Isnt it", "isn't it"), ("yall", "y'all"), ("3,000", "3000"), ("yes!", "yes"),
    ("What?", "what"), ("hello-world", "hello world"), ("ten", "10"), ("none", "0"), ("10.5", "10.5"),
    ("end.", "end"), ("U.S.A", "usa"), ("rock & roll", "rock & roll"), ("(left)", "left"),
    ("  Stop\n", "stop"), ("coca-cola; pepsi", "coca cola pepsi"), ("well - done", "well done"),
    ("The Three Bears", "3 bears"), ("o'clock", "o'clock"),
])
def test_evalai_normaliser(raw, expected):
    assert normalize_answer(raw) == expected


def test_soft_accuracy_ten_humans():
    humans = ["2", "two", "3", "3", "3", "3", "3", "3", "3", "3"]
    scores = soft_scores(humans)
    # "2" matches 2 of 10: 8 leave-one-out subsets keep both (2/3), 2 keep one (1/3) -> (8*2/3 + 2*1/3)/10 = 0.6
    assert scores["2"] == pytest.approx(0.6)
    assert scores["3"] == pytest.approx(1.0)
    assert vqa_accuracy("Two.", humans) == pytest.approx(0.6)
    assert vqa_accuracy("three", ["3"] * 3 + ["4"] * 7) == pytest.approx(0.9)  # 7 subsets keep 3, 3 keep 2 of 3
    assert vqa_accuracy("five", humans) == 0.0


def test_mme_acc_and_acc_plus(tmp_path):
    make_mme(str(tmp_path))
    # in the converter's order: code_reasoning, color (2 images each, flat layout), existence (images/ layout)
    replies = ["maybe", "maybe", "maybe", "maybe",
               "No", "Nope", "yes", "no.",
               "Yes, there is.", "no", "Yes", "yes"]
    m = mme.score(str(tmp_path), answer_questions(tmp_path, mme, replies))
    # existence: 3/4 right, 1 of 2 images fully right -> 75 + 50; color likewise ("Nope" parses as no)
    assert m["subtasks"]["existence"] == {"acc": 75.0, "acc_plus": 50.0, "score": 125.0, "questions": 4}
    assert m["subtasks"]["color"]["score"] == 125.0
    assert m["subtasks"]["code_reasoning"]["score"] == 0.0  # "maybe" is "other": always wrong
    assert m["perception"] == 250.0 and m["cognition"] == 0.0
    assert "| **Perception** (2/10 subtasks) | | | **250.00** |" in mme.markdown(m)


def test_mme_yes_no_parsing():
    assert mme.parse_yes_no("Yes.") == "yes"
    assert mme.parse_yes_no("No, it is not") == "no"
    assert mme.parse_yes_no("  yes") == "yes"
    assert mme.parse_yes_no("The answer is yes") == "other"  # official: only the first 4 characters count
    assert mme.parse_yes_no("nope") == "no"


def test_gqa_binary_open_and_distribution(tmp_path):
    make_gqa(str(tmp_path))
    replies = {"201": "Red.", "202": "yes", "203": "circle", "204": "square", "205": "yes", "206": "red"}
    m = gqa.score(str(tmp_path), answers_file(tmp_path, replies))
    assert m["questions"] == 6  # the unbalanced question is not scored
    assert m["accuracy"] == 50.0
    assert m["binary"] == pytest.approx(66.67)  # verify ok, choose ok, logical wrong
    assert m["open"] == pytest.approx(33.33)  # query: 201 ok, 203 wrong, 206 wrong
    # color group: gold {red 1, blue 1}, predicted {red 2}: chi2 = 1 + 1 = 2, weight 2
    # shape group: gold {square 2}, predicted {circle 1, square 1}: chi2 = 1/2, weight 2 -> (4 + 1) / 4 / 100
    assert m["distribution"] == pytest.approx(0.0125)


def test_textvqa_soft_accuracy(tmp_path):
    make_textvqa(str(tmp_path))
    path = tmp_path / "textvqa" / "TextVQA_0.5.1_val.json"
    data = json.loads(path.read_text())
    data["data"][1]["answers"] = ["two", "2"] + ["3"] * 8
    path.write_text(json.dumps(data))
    m = textvqa.score(str(tmp_path), answer_questions(tmp_path, textvqa, ["Nokia", "two", "go"]))
    assert m["accuracy"] == pytest.approx(100 * (1.0 + 0.6 + 0.0) / 3, abs=0.01)


def test_textvqa_prompts_with_and_without_ocr(tmp_path):
    make_textvqa(str(tmp_path))
    textvqa.convert(str(tmp_path), str(tmp_path / "ocr.jsonl"))
    textvqa.convert(str(tmp_path), str(tmp_path / "plain.jsonl"), with_ocr=False)
    first_ocr = json.loads((tmp_path / "ocr.jsonl").read_text().splitlines()[0])
    first_plain = json.loads((tmp_path / "plain.jsonl").read_text().splitlines()[0])
    assert first_ocr["text"] == ("What brand is this?\nReference OCR token: nokia, 3310\n"
                                 "Answer the question using a single word or phrase.")
    assert first_plain["text"] == "What brand is this?\nAnswer the question using a single word or phrase."
    assert first_ocr["question_id"] == "a1"  # LLaVA's id: the image's


def test_vizwiz_by_answer_type_and_submission(tmp_path):
    make_vizwiz(str(tmp_path))
    m = vizwiz.score(str(tmp_path), answer_questions(tmp_path, vizwiz, ["Unanswerable", "no", "three", "Blue."]))
    assert (m["unanswerable"], m["yes/no"], m["number"], m["other"], m["average"]) == (100.0, 0.0, 100.0, 100.0, 75.0)
    test_answers = answer_questions(tmp_path, vizwiz, ["A Dog.", "Two"], "test.jsonl", split="test")
    vizwiz.submission(str(tmp_path), test_answers, str(tmp_path / "upload.json"))
    assert json.loads((tmp_path / "upload.json").read_text()) == [
        {"image": "VizWiz_test_00000000.jpg", "answer": "dog"}, {"image": "VizWiz_test_00000001.jpg", "answer": "2"}]


def test_missing_answers_are_an_error(tmp_path):
    make_gqa(str(tmp_path))
    with pytest.raises(ValueError, match="5 questions have no answer"):
        gqa.score(str(tmp_path), answers_file(tmp_path, {"201": "red"}))


def test_normaliser_equals_the_official_processor_on_fuzzed_strings():
    """lmms-eval ships the EvalAI answer processor as the official VQA code has it (periods stripped with re.UNICODE
    passed as sub()'s count: at most 32); ours must give the same string, also past 32 periods."""
    vqa_eval_metric = pytest.importorskip("lmms_eval.tasks._task_utils.vqa_eval_metric",
                                          reason="the lmms-eval extra is part of `make install` (dev)")
    official = vqa_eval_metric.EvalAIAnswerProcessor()
    import random

    rng = random.Random(0)
    pieces = ["a", "the", "Two", "3", ",", ".", "?", "!", "-", " ", "'s", "dont", "x.y", "1.5", "none", "(", ")",
              "\n", ";", "U.S.", "3,000", "..."]
    strings = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 40))) for _ in range(3000)]
    strings += ["." * n + " end" for n in (31, 32, 33, 40, 80)] + ["a. " * 50, "e.g. " * 20 + "yes."]
    long = [s for s in strings if s.count(".") > 32]
    assert len(long) >= 4
    for s in strings:
        assert normalize_answer(s) == official(s), s
    assert normalize_answer("." * 40 + " end") == "." * 8 + " end"  # 32 removed, 8 left
