"""DeepSpeed configs parse, carry LLaVA's keys, and leave batch/precision to the HF integration ("auto")."""

import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("name,stage", [("zero2", 2), ("zero3", 3), ("zero3_offload", 3)])
def test_deepspeed_configs(name, stage):
    with open(os.path.join(ROOT, "configs", "deepspeed", f"{name}.json")) as f:
        cfg = json.load(f)
    assert cfg["zero_optimization"]["stage"] == stage
    assert cfg["train_micro_batch_size_per_gpu"] == "auto" and cfg["gradient_accumulation_steps"] == "auto"
    assert cfg["bf16"]["enabled"] == "auto"
    assert cfg["gradient_clipping"] == "auto"  # --max_grad_norm, as DDP: not the installed DeepSpeed's default
    # the Trainer builds optimizer (projector group) and schedule; a section here would replace them silently
    assert "optimizer" not in cfg and "scheduler" not in cfg
    if name == "zero3":  # checkpoints need the gathered 16-bit adapter weights
        assert cfg["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    if name == "zero3_offload":
        assert cfg["zero_optimization"]["offload_optimizer"]["device"] == "cpu"


@pytest.mark.parametrize("name", ["zero2", "zero3", "zero3_offload"])
def test_zero_sections_validate_with_deepspeed(name):
    """DeepSpeed's own config model (it rejects unknown keys) accepts every zero_optimization section."""
    config = pytest.importorskip("deepspeed.runtime.zero.config", reason="deepspeed is in the dev extra")
    with open(os.path.join(ROOT, "configs", "deepspeed", f"{name}.json")) as f:
        zero = json.load(f)["zero_optimization"]
    parsed = config.DeepSpeedZeroConfig(**{k: (10**6 if v == "auto" else v) for k, v in zero.items()})
    assert parsed.stage == zero["stage"]


@pytest.mark.parametrize("name", ["zero2", "zero3", "zero3_offload"])
@pytest.mark.parametrize("max_grad_norm", [1.0, 0.0, 0.3])
def test_clipping_follows_max_grad_norm_in_every_config(name, max_grad_norm):
    """transformers' own DeepSpeed integration fills the config from the arguments: the clipping DDP applies."""
    pytest.importorskip("deepspeed", reason="deepspeed is in the dev extra")
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    from llava.train.args import TrainingArguments

    with open(os.path.join(ROOT, "configs", "deepspeed", f"{name}.json")) as f:
        config = HfTrainerDeepSpeedConfig(json.load(f))
    args = TrainingArguments(output_dir="unused", max_grad_norm=max_grad_norm, use_cpu=True, report_to="none")
    config.trainer_config_process(args)
    assert config.config["gradient_clipping"] == max_grad_norm
