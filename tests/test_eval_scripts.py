"""End to end: a tiny checkpoint from scripts/finetune_lora.sh, evaluated by every scripts/eval/*.sh on fixtures
in the official layouts (MM-Vet graded by a stub judge on loopback), then laid beside the paper by the report."""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers.eval_fixtures import make_all
from tests.helpers.judge import StubJudge

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
    assert "vizwiz: EvalAI submission with 2 answers" in run_eval("vizwiz", setup, SPLIT="test")
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
