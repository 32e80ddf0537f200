"""QLoRA (--bits 4/8): the frozen LM quantized by bitsandbytes through transformers' BitsAndBytesConfig, adapters in
fp32 beside it; on CPU with the tiny preset."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open

from llava.adapters import AdapterConfig, inject_adapters
from llava.model.builder import load_model

bnb = pytest.importorskip("bitsandbytes", reason="the quant extra is part of `make install` (dev)")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dequantized(linear) -> torch.Tensor:
    if isinstance(linear, bnb.nn.Linear4bit):
        return bnb.functional.dequantize_4bit(linear.weight.data, linear.weight.quant_state).float()
    cb, scb = linear.weight.data.float(), linear.weight.SCB.float()  # int8 rows x per-row absmax / 127
    return cb * scb.unsqueeze(1) / 127


@pytest.mark.parametrize("bits,cls,tol", [(4, "Linear4bit", 3e-2), (8, "Linear8bitLt", 5e-2)])
def test_adapter_on_quantized_linear_matches_dequantized_reference(bits, cls, tol):
    model, _, _ = load_model("tiny", bits=bits)
    inject_adapters(model, AdapterConfig.preset("asymlora", r=4, alpha=8, dropout=0.0))
    layer = model.model.language_model.layers[0].self_attn.q_proj  # plain lora on attention
    assert type(layer.base).__name__ == cls and not layer.base.weight.dtype.is_floating_point
    assert layer.lora_A.dtype == layer.lora_B.dtype == torch.float32 and layer.lora_A.requires_grad
    assert type(model.lm_head).__name__ == "Linear"  # lm_head, projector and tower stay full precision
    assert type(model.model.multi_modal_projector.linear_1).__name__ == "Linear"
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(3, 5, layer.in_features)
    reference = x @ dequantized(layer.base).t() + layer.scaling * (x @ layer.lora_A.t() @ layer.lora_B.t())
    # the frozen path is bitsandbytes' kernel (8-bit also quantizes the input): equal within quantization error;
    # what the adapter adds on top of it is exact
    torch.testing.assert_close(layer(x), reference, atol=tol, rtol=tol)
    delta = layer.scaling * (x @ layer.lora_A.t() @ layer.lora_B.t())
    torch.testing.assert_close(layer(x) - layer.base(x), delta, atol=1e-5, rtol=1e-5)
    layer(x).sum().backward()
    assert layer.lora_B.grad.abs().sum() > 0 and layer.lora_A.grad.abs().sum() > 0


@pytest.mark.slow
@pytest.mark.parametrize("bits", [4, 8])
def test_qlora_tiny_run_trains_and_saves_only_adapters(tmp_path, bits):
    env = {**os.environ, "MODEL": "tiny", "BITS": str(bits), "OUTPUT": str(tmp_path / "run"), "PYTHON": sys.executable,
           "LOGGING_STEPS": "10", "SAVE_STEPS": "40", "EXTRA_ARGS": "--max_steps 60"}
    proc = subprocess.run(["bash", "scripts/finetune_lora.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"QLoRA {bits}-bit LM" in proc.stdout
    losses = [h["loss"] for h in json.loads((tmp_path / "run" / "trainer_state.json").read_text())["log_history"]
              if "loss" in h]
    assert losses[-1] < 0.7 * losses[0], losses
    with safe_open(str(tmp_path / "run" / "checkpoint-40" / "llava_adapters.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and all("lora_" in k or k.startswith("model.multi_modal_projector.") for k in keys)
    assert json.loads((tmp_path / "run" / "llava_base.json").read_text())["bits"] == bits


def test_qlora_with_zero3_is_refused_before_loading(tmp_path):
    pytest.importorskip("deepspeed")
    from llava.train.train import train

    with pytest.raises(ValueError, match="ZeRO-3 cannot partition bitsandbytes"):
        train(["--model_name_or_path", "tiny", "--data_path", "unused.json", "--output_dir", str(tmp_path),
               "--deepspeed", os.path.join(ROOT, "configs/deepspeed/zero3.json"), "--bits", "4", "--lora_enable", "True",
               "--use_cpu", "True"])
