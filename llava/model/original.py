"""Original LLaVA checkpoints (haotian-liu/LLaVA's layout): a Llama config with `mm_*` keys, Llama weights plus
`model.mm_projector.*` (and, when the tower was tuned, `model.vision_tower.vision_tower.*`).

The LM is loaded by transformers' `LlamaForCausalLM.from_pretrained` with an explicit Llama config, so ZeRO-3
partitioning, sharded files and stale buffers (`rotary_emb.inv_freq`, which older transformers saved) are handled
there; the projector and any tower tensors are read by key prefix and written into the assembled model.
"""

from __future__ import annotations

import json
import os

from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from llava.model.image import clip_image_processor
from llava.model.parts import assemble, load_vision_tower
from llava.model.weights import (
    PROJECTOR_KEY,
    TOWER_KEY,
    copy_into,
    load_projector_weights,
    read_prefixed,
)


def read_original_config(path: str) -> dict:
    with open(os.path.join(path, "config.json")) as f:
        raw = json.load(f)
    if raw.get("mm_projector_type", "mlp2x_gelu") != "mlp2x_gelu":
        raise ValueError(f"{path}: only the LLaVA-1.5 projector (mlp2x_gelu) is supported, got {raw['mm_projector_type']}")
    return raw


def llama_config(raw: dict) -> LlamaConfig:
    llama_keys = set(LlamaConfig().to_dict())
    return LlamaConfig(**{k: v for k, v in raw.items() if k in llama_keys and k not in ("model_type", "architectures")})


def from_original_llava(path: str, vision_tower: str | None = None, dtype=None, attn_implementation: str = "sdpa",
                        quantization_config=None):
    raw = read_original_config(path)
    tower_path = vision_tower or raw.get("mm_vision_tower")
    if not tower_path:
        raise ValueError(f"{path}/config.json names no mm_vision_tower; pass --vision_tower")
    tower = load_vision_tower(tower_path, dtype)
    tuned_tower = read_prefixed(path, TOWER_KEY)
    if tuned_tower:  # a fine-tuned tower in the checkpoint wins over the stock one it started from
        # LLaVA names them after CLIPVisionModel's old layout (`...vision_model.encoder...`); transformers 5 drops
        # the `vision_model.` level
        copy_into(tower, {k.removeprefix(TOWER_KEY).removeprefix("vision_model."): v for k, v in tuned_tower.items()},
                  f"{path}: vision tower tensors ({TOWER_KEY}*)")
    kwargs = {"quantization_config": quantization_config} if quantization_config is not None else {}
    lm = LlamaForCausalLM.from_pretrained(path, config=llama_config(raw), dtype=dtype,
                                          attn_implementation=attn_implementation, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True)
    model = assemble(tower, lm, tokenizer, dtype, attn_implementation)
    projector = read_prefixed(path, PROJECTOR_KEY)
    if projector:
        load_projector_weights(model.model.multi_modal_projector, projector, f"{path}: projector")
    return model, tokenizer, clip_image_processor(tower.config.image_size)


def save_original_llava(model, tokenizer, path: str, vision_tower_path: str, include_tower: bool = False) -> None:
    """Write `model` in the original LLaVA layout (for interoperability tests and for users going back)."""
    from safetensors.torch import save_file

    os.makedirs(path, exist_ok=True)
    inverse = [("model.multi_modal_projector.linear_1.", "model.mm_projector.0."),
               ("model.multi_modal_projector.linear_2.", "model.mm_projector.2."),
               ("model.vision_tower.", TOWER_KEY + "vision_model."),
               ("model.language_model.", "model."), ("lm_head.", "lm_head.")]
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("model.vision_tower.") and not include_tower:
            continue
        for src, dst in inverse:
            if key.startswith(src):
                state[dst + key[len(src):]] = value.contiguous()
                break
    save_file(state, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    cfg = model.config.text_config.to_dict()
    vcfg = model.config.vision_config
    cfg.update(model_type="llava_llama", architectures=["LlavaLlamaForCausalLM"], mm_vision_tower=vision_tower_path,
               mm_hidden_size=vcfg.hidden_size, mm_projector_type="mlp2x_gelu", mm_vision_select_layer=-2,
               mm_vision_select_feature="patch", image_aspect_ratio="pad", mm_use_im_start_end=False)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, default=str)
    tokenizer.save_pretrained(path)
