"""A tiny LLaVA saved as llava-hf, as an original LLaVA checkpoint, and as parts reloads to identical logits."""

import pytest
import torch
from transformers import LlamaForCausalLM

from llava.model.builder import (
    from_parts,
    load_model,
    map_original_key,
    resolve_attn_implementation,
    save_original_llava,
)


def _inputs(model):
    n = model.config.image_seq_length
    ids = torch.tensor([[1] + [model.config.image_token_index] * n + [50, 61, 72, 90]])
    torch.manual_seed(1)
    return dict(input_ids=ids, pixel_values=torch.randn(1, 3, 32, 32))


@pytest.fixture
def saved(tmp_path, tiny):
    model, tokenizer = tiny
    with torch.no_grad():  # a "trained" projector, so a missing projector would show in the logits
        model.model.multi_modal_projector.linear_1.weight.normal_()
    model.model.vision_tower.save_pretrained(tmp_path / "clip")
    return model, tokenizer, tmp_path


def test_llava_hf_layout_roundtrip(saved):
    model, tokenizer, tmp = saved
    model.save_pretrained(tmp / "hf")
    tokenizer.save_pretrained(tmp / "hf")
    loaded, _, _ = load_model(str(tmp / "hf"))
    torch.testing.assert_close(loaded(**_inputs(loaded)).logits, model(**_inputs(model)).logits, atol=0, rtol=0)


def test_original_llava_layout_roundtrip(saved):
    model, tokenizer, tmp = saved
    save_original_llava(model, tokenizer, str(tmp / "orig"), str(tmp / "clip"))
    loaded, _, _ = load_model(str(tmp / "orig"))
    torch.testing.assert_close(loaded(**_inputs(loaded)).logits, model(**_inputs(model)).logits, atol=0, rtol=0)


def test_parts_with_stage1_projector_bin(saved):
    """Vision tower dir + Llama dir + LLaVA's mm_projector.bin (a torch pickle, loaded weights_only)."""
    model, tokenizer, tmp = saved
    lm = LlamaForCausalLM(model.config.text_config)
    lm.model.load_state_dict(model.model.language_model.state_dict())
    lm.lm_head.load_state_dict(model.lm_head.state_dict())
    lm.save_pretrained(tmp / "lm")
    tokenizer.save_pretrained(tmp / "lm")
    proj = {("model.mm_projector.0." if k.startswith("linear_1") else "model.mm_projector.2.") + k.split(".", 1)[1]: v
            for k, v in model.model.multi_modal_projector.state_dict().items()}
    torch.save(proj, tmp / "mm_projector.bin")
    loaded, _, image_processor = from_parts(str(tmp / "clip"), str(tmp / "lm"), str(tmp / "mm_projector.bin"))
    assert image_processor.crop_size["height"] == 32
    torch.testing.assert_close(loaded(**_inputs(loaded)).logits, model(**_inputs(model)).logits, atol=0, rtol=0)


def test_original_key_map():
    assert map_original_key("model.mm_projector.0.weight") == "model.multi_modal_projector.linear_1.weight"
    assert map_original_key("model.mm_projector.2.bias") == "model.multi_modal_projector.linear_2.bias"
    assert map_original_key("model.layers.3.mlp.up_proj.weight") == "model.language_model.layers.3.mlp.up_proj.weight"
    assert map_original_key("lm_head.weight") == "lm_head.weight"


def test_tiny_preset_is_deterministic():
    a, _, _ = load_model("tiny", seed=3)
    b, _, _ = load_model("tiny", seed=3)
    for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), n


def test_missing_vision_tower_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a local directory"):
        from_parts("openai/clip-vit-large-patch14-336", str(tmp_path))


def test_flash_attention_needs_the_extra():
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"llava-asymlora\[flash\]"):
            resolve_attn_implementation("flash_attention_2")
    assert resolve_attn_implementation(None) == "sdpa"


def test_original_checkpoint_with_inv_freq_and_a_tuned_tower(saved):
    """Older transformers saved rotary `inv_freq` buffers; a checkpoint whose tower was tuned carries its tensors:
    the first are ignored, the second replace the stock tower from mm_vision_tower."""
    from safetensors.torch import load_file, save_file

    model, tokenizer, tmp = saved
    with torch.no_grad():
        model.model.vision_tower.encoder.layers[0].mlp.fc1.weight.add_(1.0)  # "tuned"
    save_original_llava(model, tokenizer, str(tmp / "orig"), str(tmp / "clip"), include_tower=True)
    path = tmp / "orig" / "model.safetensors"
    state = load_file(str(path))
    assert "model.vision_tower.vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight" in state  # LLaVA's names
    state["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(8)
    save_file(state, str(path), metadata={"format": "pt"})
    loaded, _, _ = load_model(str(tmp / "orig"))
    torch.testing.assert_close(loaded.model.vision_tower.encoder.layers[0].mlp.fc1.weight,
                               model.model.vision_tower.encoder.layers[0].mlp.fc1.weight, atol=0, rtol=0)
    torch.testing.assert_close(loaded(**_inputs(loaded)).logits, model(**_inputs(model)).logits, atol=0, rtol=0)
