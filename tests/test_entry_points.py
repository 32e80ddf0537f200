"""The console entry points installed by `make install`, and the train entry point's short --help."""

import os
import subprocess
import sys

import pytest

BIN = os.path.dirname(sys.executable)


@pytest.mark.parametrize("name,module", [("llava-train", "llava.train.train"), ("llava-generate", "llava.eval.generate"),
                                         ("llava-merge", "llava.adapters.merge"), ("llava-chat", "llava.serve.cli")])
def test_console_scripts_are_installed(name, module):
    script = os.path.join(BIN, name)
    assert os.path.isfile(script), f"{name} missing: re-run make install (pyproject [project.scripts])"
    assert module in open(script).read()


def test_train_help_lists_our_flags_first_and_points_to_the_rest():
    proc = subprocess.run([os.path.join(BIN, "llava-train"), "--help"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    first = out.index("--model_name_or_path")
    assert first < out.index("--adapter_scheme") < out.index("--balance_loss") < out.index("--output_dir")
    assert "--fsdp" not in out and "--help-all lists every option" in out  # not the 150 others
    assert len(out.splitlines()) < 90
    full = subprocess.run([os.path.join(BIN, "llava-train"), "--help-all"], capture_output=True, text=True, timeout=300)
    assert full.returncode == 0 and "--fsdp" in full.stdout and "--adapter_scheme" in full.stdout
