"""What a checkpoint holds and how to rebuild a model from one.

Every checkpoint directory (intermediate `checkpoint-N/` and the final output) holds: llava_adapters.json,
llava_adapters.safetensors (adapters, routers and the projector), config.json (the Llava model config),
llava_base.json (how to rebuild the frozen base: model/checkpoint.py), the tokenizer and the image processor.
"""

from __future__ import annotations

import os

import torch

from llava.adapters.config import config_path
from llava.adapters.inject import cast_adapters
from llava.adapters.io import load_adapters
from llava.model.builder import load_model, resolve_dtype
from llava.model.checkpoint import BASE_NAME, read_base_info


def load_checkpoint_model(directory: str, dtype="fp32", attn_implementation: str | None = None,
                          load_weights: bool = True, bits: int | None = None):
    """Rebuild base model + adapters + projector from a checkpoint. Returns (model, tokenizer, image_processor).

    A merged or plain llava-hf directory (no llava_base.json) loads as a model without adapters. `bits` (4/8)
    overrides the precision the base was trained in (e.g. a 4-bit chat with a model trained in bf16).
    """
    if not os.path.exists(os.path.join(directory, BASE_NAME)):
        return load_model(directory, dtype=dtype, attn_implementation=attn_implementation, bits=bits or 16)
    info = read_base_info(directory)
    model, tokenizer, image_processor = load_model(
        info["model_name_or_path"], vision_tower=info.get("vision_tower"),
        pretrain_mm_mlp_adapter=info.get("pretrain_mm_mlp_adapter"), dtype=dtype,
        attn_implementation=attn_implementation, seed=info.get("model_seed", 0), bits=bits or info.get("bits", 16))
    if load_weights and config_path(directory) is not None:
        load_adapters(model, directory)
        compute = resolve_dtype(dtype)
        if compute != torch.float32:  # inference in bf16/fp16: adapters cast once here, not per layer and step
            cast_adapters(model, compute)
    model.llava_base_info = info
    return model, tokenizer, image_processor
