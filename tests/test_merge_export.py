"""Merging is exact where promised and refused where not; lora exports to PEFT and reloads to the same logits."""

import pytest
import torch
from peft import PeftModel

from llava.adapters import AdapterConfig, AdapterLinear, adapter_batch, export_peft, inject_adapters, merge_adapters
from llava.adapters.attached import adapter_config
from llava.commands.merge import main as merge_cli
from llava.model.tiny import build_tiny
from tests.helpers.training import tiny_inputs


def trained(config, seed=0):
    model, tokenizer = build_tiny(seed=0)
    torch.manual_seed(seed)
    inject_adapters(model, config)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, AdapterLinear):
                m.lora_B.normal_(std=0.05)
        model.model.multi_modal_projector.linear_2.weight.normal_()
    return model.eval(), tokenizer


def logits(model, task=None):
    inputs = tiny_inputs(model)
    inputs.pop("labels")
    with torch.no_grad():
        if adapter_config(model) is None:
            return model(**inputs).logits
        with adapter_batch(model, task_ids=None if task is None else torch.tensor([task, task])):
            return model(**inputs).logits


def test_merged_lora_matches_unmerged():
    model, _ = trained(AdapterConfig(r=4, dropout=0.0))
    before = logits(model)
    assert (before - logits(build_tiny(seed=0)[0].eval())).abs().max() > 1e-2  # the adapter matters
    merge_adapters(model)
    assert not any(isinstance(m, AdapterLinear) for m in model.modules())
    torch.testing.assert_close(logits(model), before, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("task", [0, 1, 2])
def test_merged_per_task_asymlora_matches_unmerged(task):
    cfg = AdapterConfig(scheme="asymlora", r=4, num_tasks=3, dropout=0.0, task_names=["vqa", "gen", "vqg"])
    model, _ = trained(cfg)
    before = logits(model, task)
    merge_adapters(model, task=cfg.task_names[task])
    torch.testing.assert_close(logits(model), before, atol=1e-5, rtol=1e-5)


def test_task_heads_need_a_task_to_merge():
    model, _ = trained(AdapterConfig(scheme="asymlora", r=4, num_tasks=2, task_names=["a", "b"]))
    with pytest.raises(ValueError, match="pass task="):
        merge_adapters(model)


@pytest.mark.parametrize("config", [AdapterConfig.preset("asymlora", r=4),
                                    AdapterConfig(scheme="moe_lora", r=4, num_experts=2),
                                    AdapterConfig(scheme="mixlora", r=2, num_experts=4)])
def test_routed_adapters_refuse_to_merge(config):
    model, _ = trained(config)
    before = logits(model)
    with pytest.raises(ValueError, match="not exact|depends on the input"):
        merge_adapters(model)
    torch.testing.assert_close(logits(model), before, atol=0, rtol=0)  # refused before changing anything


def test_export_peft_loads_with_peft_and_matches(tmp_path):
    model, _ = trained(AdapterConfig(r=4, dropout=0.0))
    expected = logits(model)
    export_peft(model, str(tmp_path / "peft"))
    base, _ = build_tiny(seed=0)
    peft_model = PeftModel.from_pretrained(base, str(tmp_path / "peft")).eval()
    inputs = tiny_inputs(base)
    inputs.pop("labels")
    with torch.no_grad():
        got = peft_model(**inputs).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_export_peft_refuses_mixtures(tmp_path):
    model, _ = trained(AdapterConfig.preset("asymlora", r=4))
    with pytest.raises(ValueError, match="only plain lora"):
        export_peft(model, str(tmp_path / "x"))


def test_merge_cli_writes_a_plain_llava_hf_model(tmp_path, trained_tiny):
    from llava.checkpoint import load_checkpoint_model
    from tests.helpers.training import logits as ckpt_logits

    ckpt = trained_tiny("asymlora_tasks") / "checkpoint-2"
    merge_cli(["--checkpoint", str(ckpt), "--task", "color", "--out", str(tmp_path / "merged")])
    merged, tokenizer, _ = load_checkpoint_model(str(tmp_path / "merged"))
    unmerged, _, _ = load_checkpoint_model(str(ckpt))
    color = adapter_config(unmerged).task_id("color")
    torch.testing.assert_close(ckpt_logits(merged, tokenizer), ckpt_logits(unmerged, tokenizer, torch.tensor([color] * 2)),
                               atol=1e-5, rtol=1e-5)


def test_export_peft_from_a_bare_causal_lm(tmp_path):
    """inject_adapters accepts a plain LlamaForCausalLM; its export must load into PEFT too (no language_model)."""
    from transformers import LlamaForCausalLM

    text_config = build_tiny(seed=0)[0].config.text_config
    torch.manual_seed(0)
    lm = LlamaForCausalLM(text_config).eval()
    reference = LlamaForCausalLM(text_config).eval()
    reference.load_state_dict(lm.state_dict())
    inject_adapters(lm, AdapterConfig(r=4, dropout=0.0))
    with torch.no_grad():
        for m in lm.modules():
            if isinstance(m, AdapterLinear):
                m.lora_B.normal_(std=0.05)
    ids = torch.tensor([[1, 50, 61, 72, 90]])
    with torch.no_grad():
        expected = lm(input_ids=ids).logits
    export_peft(lm, str(tmp_path / "peft"))
    peft_model = PeftModel.from_pretrained(reference, str(tmp_path / "peft")).eval()
    with torch.no_grad():
        got = peft_model(input_ids=ids).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_bf16_base_keeps_fp32_adapters_and_merges_within_bf16_rounding():
    model, _ = build_tiny(seed=0, dtype=torch.bfloat16)
    torch.manual_seed(0)
    inject_adapters(model, AdapterConfig(r=4, dropout=0.0))
    layer = model.model.language_model.layers[0].mlp.up_proj
    assert layer.lora_A.dtype == layer.lora_B.dtype == torch.float32  # as PEFT's autocast_adapter_dtype
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, AdapterLinear):
                m.lora_B.normal_(std=0.05)
    x = torch.randn(2, 3, layer.in_features, dtype=torch.bfloat16)
    assert layer(x).dtype == torch.bfloat16  # computed in the input dtype
    w64 = layer.base.weight.double() + layer.scaling * (layer.lora_B.double() @ layer.lora_A.double())
    merge_adapters(model)
    merged = model.model.language_model.layers[0].mlp.up_proj.weight
    assert merged.dtype == torch.bfloat16
    # one rounding of the exact sum: at most half a bf16 ulp (2^-8 relative) from the fp64 reference
    assert ((merged.double() - w64).abs() <= w64.abs() * 2**-8 + 1e-30).all()
