"""Our benchmark files against LLaVA-1.5's own (tests/fixtures/llava_eval: rows of haotian-liu/LLaVA's
playground/data/eval): converters give LLaVA's lines byte for byte, LLaVA's published answers score with its
repeated ids, and the official-format files come out as LLaVA's scripts wrote them."""

import json
import os
import subprocess
import sys

import pytest

from llava.eval.benchmark import export
from llava.eval.benchmarks import BENCHMARKS, gqa, mme, textvqa
from tests.helpers.llava_eval_files import ANSWER_FILES, LLAVA, llava_lines, make_release

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture()
def release(tmp_path):
    make_release(str(tmp_path))
    return str(tmp_path)


def answers(name):
    return os.path.join(LLAVA, ANSWER_FILES[name])


@pytest.mark.parametrize("name", ["mme", "gqa", "textvqa", "vizwiz", "mmvet"])
def test_converted_lines_are_llavas(release, tmp_path, name):
    out = tmp_path / f"{name}.jsonl"
    kwargs = {"split": "test"} if name == "vizwiz" else {}
    BENCHMARKS[name].convert(release, str(out), **kwargs)
    assert sorted(out.read_text(encoding="utf-8").splitlines()) == sorted(llava_lines(name))


def test_mme_prompt_is_llavas_not_mmes(release, tmp_path):
    """MME asks "... Please answer yes or no."; LLaVA (and lmms-eval) ask the question and the short-answer
    instruction instead. Before, our prompt kept both sentences."""
    mme.convert(release, str(tmp_path / "q.jsonl"))
    rows = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    python = next(r for r in rows if r["text"].startswith("Is a python code"))
    assert python["text"] == "Is a python code shown in the picture?\nAnswer the question using a single word or phrase."
    historical = next(r for r in rows if "historical" in r["text"])  # MME's line has two spaces before the sentence
    assert historical["text"].startswith("Does this artwork belong to the type of historical?\n")
    theirs = pytest.importorskip("lmms_eval.tasks.mme.utils", reason="the lmms-eval extra is part of `make install`")
    lmms = theirs.mme_doc_to_text({"question": "Is a python code shown in the picture? Please answer yes or no."},
                                  {"pre_prompt": "", "post_prompt": "\nAnswer the question using a single word or phrase."})
    assert lmms == python["text"]


def test_llavas_published_answers_score_with_repeated_ids(release):
    m = mme.score(release, answers("mme"))  # ids repeat: both questions of an image share one
    assert m["subtasks"]["code_reasoning"] == {"acc": 50.0, "acc_plus": 0.0, "score": 50.0, "questions": 2}
    assert m["subtasks"]["artwork"]["score"] == 50.0 and m["perception"] == 50.0 and m["cognition"] == 50.0
    assert gqa.score(release, answers("gqa"))["accuracy"] == pytest.approx(66.67)
    # ids repeat (831bcec304a17054 twice); "Dakota digital" against 8 x dakota + 2 x dakota digital is 0.6
    assert textvqa.score(release, answers("textvqa"))["accuracy"] == pytest.approx(100 * (0.6 + 0 + 1 + 1) / 4)


def test_official_files_are_llavas(release, tmp_path):
    n = export("vizwiz", release, answers("vizwiz"), str(tmp_path / "upload.json"), "test")
    assert n == 8
    assert (tmp_path / "upload.json").read_bytes() == open(
        os.path.join(LLAVA, "vizwiz", "answers_upload", "llava-v1.5-13b.json"), "rb").read()
    export("mmvet", release, answers("mmvet"), str(tmp_path / "mmvet.json"))
    assert (tmp_path / "mmvet.json").read_bytes() == open(
        os.path.join(LLAVA, "mm-vet", "results", "llava-v1.5-13b.json"), "rb").read()
    export("gqa", release, answers("gqa"), str(tmp_path / "gqa.json"))
    assert json.loads((tmp_path / "gqa.json").read_text()) == [
        {"questionId": "201307251", "prediction": "no"}, {"questionId": "201640614", "prediction": "woman"},
        {"questionId": "202225914", "prediction": "no"}]
    export("mme", release, answers("mme"), str(tmp_path / "eval_tool"))
    assert (tmp_path / "eval_tool" / "code_reasoning.txt").read_text() == (
        "0020.txt\tIs a python code shown in the picture? Please answer yes or no.\tYes\tYes\n"
        "0020.txt\tIs a c++ code shown in the picture? Please answer yes or no.\tNo\tYes\n")
    assert (tmp_path / "eval_tool" / "artwork.txt").read_text().splitlines()[1] == (
        "14777.txt\tDoes this artwork belong to the type of historical?  Please answer yes or no.\tNo\tYes")


def cli(*args):
    return subprocess.run([sys.executable, "-m", "llava.eval.benchmark", *args], cwd=ROOT, capture_output=True,
                          text=True)


def test_missing_ocr_source_is_one_line(release, tmp_path):
    os.remove(os.path.join(release, "textvqa", "TextVQA_Rosetta_OCR_v0.2_val.json"))
    proc = cli("convert", "textvqa", "--root", release, "--out", str(tmp_path / "q.jsonl"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "TextVQA_Rosetta_OCR_v0.2_val.json" in proc.stderr
    assert not (tmp_path / "q.jsonl").exists()
    assert cli("convert", "textvqa", "--root", release, "--out", str(tmp_path / "q.jsonl"), "--no-ocr").returncode == 0


def test_a_file_of_our_earlier_format_under_llavas_name_is_named(tmp_path):
    old = tmp_path / "llava_mme.jsonl"
    old.write_text(json.dumps({"question_id": "color/0000.png#0", "image": "color/0000.png", "text": "x?",
                               "category": "color"}) + "\n")
    proc = cli("check", "mme", "--questions", str(old))
    assert proc.returncode != 0 and "earlier llava-asymlora" in proc.stderr and "Traceback" not in proc.stderr
    assert cli("check", "mme", "--questions", os.path.join(LLAVA, "MME", "llava_mme.jsonl")).returncode == 0


def test_answers_to_another_split_are_refused(release, tmp_path):
    rows = [json.loads(line) for line in open(answers("vizwiz"))]
    rows[1]["prompt"] = "What is that?\nWhen the provided information is insufficient, respond with 'Unanswerable'."
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match="another split or file"):
        export("vizwiz", release, str(path), str(tmp_path / "u.json"), "test")
