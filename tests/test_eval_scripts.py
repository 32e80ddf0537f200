"""End to end: a tiny checkpoint from scripts/finetune_lora.sh, evaluated by every scripts/eval/*.sh on fixtures
in the official layouts (MM-Vet graded by a stub judge on loopback), then laid beside the paper by the report."""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers.eval_fixtures import make_all
from tests.helpers.judge import StubJudge
from tests.helpers.llava_eval_files import QUESTION_FILES, copy_question_files, make_release

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval")
    ckpt = tmp / "tiny-lora"
    env = {**os.environ, "MODEL": "tiny", "OUTPUT": str(ckpt), "PYTHON": sys.executable,
           "EXTRA_ARGS": "--max_steps 12", "SAVE_STEPS": "12"}
    proc = subprocess.run(["bash", "scripts/finetune_lora.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    make_all(str(tmp / "data"))
    stub = StubJudge(reply="0.4", fail_first=1)
    base_env = {**os.environ, "PYTHON": sys.executable, "EVAL_ROOT": str(tmp / "data"), "RUNS_DIR": str(tmp / "runs"),
                "BATCH": "4", "OPENAI_BASE_URL": stub.url, "OPENAI_API_KEY": "test-key"}
    yield tmp, ckpt, base_env
    stub.close()


def run_eval(script, setup, **env):
    tmp, ckpt, base_env = setup
    proc = subprocess.run(["bash", f"scripts/eval/{script}.sh", str(ckpt), "tiny-lora"], cwd=ROOT,
                          env={**base_env, **env}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_every_eval_script_and_the_report(setup):
    tmp = setup[0]
    out = run_eval("mme", setup)
    assert "| existence |" in out and "**Perception** (2/10 subtasks)" in out and "**Cognition** (1/4 subtasks)" in out
    assert "| Binary | Open | Accuracy | Distribution" in run_eval("gqa", setup)
    assert "| TextVQA accuracy |" in run_eval("textvqa", setup)
    assert "| TextVQA accuracy |" in run_eval("textvqa", setup, OCR="0")
    assert "| Unanswerable | Yes/No | Number | Other | Average |" in run_eval("vizwiz", setup)
    # COMPILE=1: the static-cache decoding path (compiled on a GPU) through the scripts
    assert "vizwiz: 2 answers in the official evaluator's format" in run_eval("vizwiz", setup, SPLIT="test", COMPILE="1")
    assert "| 40.0 | 40.0 | 40.0 | 40.0 | n/a | 40.0 | 40.0 |" in run_eval("mmvet", setup)
    # Every question answered once; re-running a script resumes (nothing new to generate) and scores again.
    answers = tmp / "data" / "gqa" / "answers" / "tiny-lora.jsonl"
    ids = [json.loads(line)["question_id"] for line in answers.read_text().splitlines()]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 7
    run_eval("gqa", setup)
    assert len(answers.read_text().splitlines()) == 7
    metrics = {p.stem: json.loads(p.read_text()) for p in (tmp / "runs" / "tiny-lora").glob("*.json")}
    assert set(metrics) == {"mme", "gqa", "textvqa", "vizwiz", "mmvet"}

    proc = subprocess.run([sys.executable, "-m", "llava.eval.report", "--table", "2", "--runs", str(tmp / "runs"),
                           "--out", str(tmp / "report")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| AsymLoRA (paper) | 55.51 | 31.8 | 1327.93 | 287.14 | 75.23 | 46.35 | 59.6 | 1.5 |" in proc.stdout
    ours = [line for line in proc.stdout.splitlines() if line.startswith("| tiny-lora (ours) |")]
    assert len(ours) == 1 and f"{metrics['mmvet']['total']:.2f}" in ours[0]
    assert (tmp / "report" / "table2.png").stat().st_size > 5000


@pytest.mark.slow
def test_every_script_on_llavas_own_question_files(setup):
    """LLaVA's eval.zip files in place (rows of the real ones): each script uses them as they are, the model is sent
    each file's text byte for byte, answers come back in LLaVA's format, and scoring succeeds with LLaVA's repeated
    ids (MME, TextVQA)."""
    tmp, _, base_env = setup
    root = tmp / "llava_root"
    make_release(str(root))
    copy_question_files(str(root))
    env = {"EVAL_ROOT": str(root), "RUNS_DIR": str(tmp / "llava_runs"), "NUM_CHUNKS": "1"}
    for name, script in [("mme", "mme"), ("gqa", "gqa"), ("textvqa", "textvqa"), ("mmvet", "mmvet")]:
        out = run_eval(script, setup, **env)
        assert f"{name}: LLaVA's question file {root / QUESTION_FILES[name]}" in out
    out = run_eval("vizwiz", setup, SPLIT="test", **env)
    assert "vizwiz: 8 answers in the official evaluator's format" in out
    answer_files = {"mme": "MME/answers/tiny-lora.jsonl", "gqa": "gqa/answers/tiny-lora.jsonl",
                    "textvqa": "textvqa/answers/tiny-lora.jsonl", "vizwiz": "vizwiz/answers/tiny-lora-test.jsonl",
                    "mmvet": "mm-vet/answers/tiny-lora.jsonl"}
    for name, rel in answer_files.items():
        questions = [json.loads(line) for line in (root / QUESTION_FILES[name]).read_text().splitlines()]
        rows = [json.loads(line) for line in (root / rel).read_text().splitlines()]
        assert [(r["question_id"], r["prompt"]) for r in rows] == [(q["question_id"], q["text"]) for q in questions]
        for q, r in zip(questions, rows):
            assert list(r)[:6] == ["question_id", "prompt", "text", "answer_id", "model_id", "metadata"]
            assert f"<image>\n{q['text']}" in r["metadata"]["full_prompt"], name  # the file's text, byte for byte
            assert r["metadata"]["dtype"] == "fp32" and r["metadata"]["batch_size"] == 4
    runs = tmp / "llava_runs" / "tiny-lora"
    mme_metrics = json.loads((runs / "mme.json").read_text())
    assert mme_metrics["subtasks"]["code_reasoning"]["questions"] == 2
    assert mme_metrics["generation"] == {"dtype": "fp32", "batch_size": 4, "conv_mode": "v1"}  # the run's --version
    assert json.loads((runs / "textvqa.json").read_text())["questions"] == 4
    assert sorted(p.name for p in (runs / "official" / "mme_eval_tool").iterdir()) == ["artwork.txt", "code_reasoning.txt"]
    assert len(json.loads((runs / "official" / "gqa_predictions.json").read_text())) == 3
    assert set(json.loads((runs / "official" / "mmvet_results.json").read_text())) == {"v1_0", "v1_1", "v1_2", "v1_7"}
