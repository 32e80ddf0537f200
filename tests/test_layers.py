"""The packages' layers (.importlinter, run by `make lint`) hold, and the check fails on a violation."""

import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINT = shutil.which("lint-imports", path=os.path.dirname(sys.executable))


def lint() -> subprocess.CompletedProcess:
    return subprocess.run([LINT, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_layers_hold_and_a_violation_breaks_them():
    assert LINT is not None, "lint-imports not found: install the dev extra (make install)"
    assert lint().returncode == 0
    probe = os.path.join(ROOT, "llava", "data", "_layer_probe.py")
    try:
        with open(probe, "w") as f:
            f.write("import llava.serve.api  # data importing serve: against the layers\n")
        broken = lint()
    finally:
        os.remove(probe)
    assert broken.returncode != 0 and "BROKEN" in broken.stdout and "llava.data._layer_probe" in broken.stdout
