"""The packages' layers (.importlinter, run by `make lint`) hold, and the check fails on a violation."""

import json
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


CORE_IMPORTS = """
import importlib, json, pathlib, sys
import llava
from llava.model.builder import load_model
root = pathlib.Path(llava.__file__).parent
names = sorted(".".join(("llava",) + p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
               for p in root.rglob("*.py"))
core = [n for n in names if not n.startswith(("llava.kit", "llava.demo"))]
for name in core:
    importlib.import_module(name)
load_model("tiny")  # a model load other than the small preset
loaded = [k for k in sys.modules if k.startswith("llava.kit")]
import llava.demo  # the control: the demo is the kit's, and the check sees it
control = [k for k in sys.modules if k.startswith("llava.kit")]
print(json.dumps({"core": len(core), "loaded": loaded, "control": control}))
"""


def test_the_core_imports_nothing_of_the_experiment_kit():
    """Every module outside llava/kit (and the demo shim), imported, and a tiny model loaded: no llava.kit module is
    loaded; the kit comes in only when asked for (the small preset, the demo)."""
    done = subprocess.run([sys.executable, "-c", CORE_IMPORTS], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["core"] > 100 and seen["loaded"] == [], seen
    assert "llava.kit.demo" in seen["control"]
