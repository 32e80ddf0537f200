"""Progress bars on a terminal, none in a redirected log: a tiny training and an evaluation run once under a pty
(with a size, as a terminal has) and once redirected to a file."""

import os
import shlex
import shutil
import subprocess
import sys

import pytest

from tests.helpers.eval_fixtures import make_gqa

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def commands(tmp_path, name):
    """A 20-step tiny training, then its checkpoint answering GQA fixture questions."""
    make_gqa(str(tmp_path / "eval"))
    subprocess.run([sys.executable, "-m", "llava.eval.benchmark", "convert", "gqa", "--root", str(tmp_path / "eval"),
                    "--out", str(tmp_path / "q.jsonl")], cwd=ROOT, check=True, capture_output=True)
    out = tmp_path / name
    train = (f"MODEL=tiny OUTPUT={out} PYTHON={shlex.quote(sys.executable)} EXTRA_ARGS='--max_steps 20' "
             "bash scripts/finetune_lora.sh")
    answer = shlex.join([sys.executable, "-m", "llava.eval.generate", "--model-path", str(out), "--question-file",
                         str(tmp_path / "q.jsonl"), "--answers-file", str(tmp_path / f"{name}.jsonl"),
                         "--image-folder", str(tmp_path / "eval" / "gqa" / "data" / "images"), "--batch-size", "2",
                         "--max-new-tokens", "4"])
    return f"{train} && {answer}"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux `script` for a pty")
def test_a_terminal_shows_the_training_and_answering_bars(tmp_path):
    run = subprocess.run(["script", "-qec", f"stty cols 120 rows 40; {commands(tmp_path, 'tty')}", "/dev/null"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:]
    screen = run.stdout.replace("\r", "\n")
    assert any("20/20" in line and "it/s" in line for line in screen.splitlines()), screen[-3000:]  # Trainer's bar
    assert any("7/7" in line and ("it/s" in line or "s/it" in line) for line in screen.splitlines()), screen[-3000:]


@pytest.mark.slow
def test_a_redirected_log_holds_no_carriage_return(tmp_path):
    log = tmp_path / "run.log"
    with open(log, "w") as f:
        subprocess.run(["bash", "-c", commands(tmp_path, "log")], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                       timeout=600, check=True)
    text = log.read_text()
    assert "\r" not in text and "'loss':" in text and "answered 7 questions" in text, text[-3000:]
