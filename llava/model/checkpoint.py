"""What a checkpoint holds and how to rebuild a model from one.

Every checkpoint directory (intermediate `checkpoint-N/` and the final output) holds: llava_adapters.json,
llava_adapters.safetensors (adapters, routers and the projector), config.json (the Llava model config),
llava_base.json (how to rebuild the frozen base), the tokenizer and the image processor.
"""

from __future__ import annotations

import json
import os

import torch

from llava.adapters.config import config_path
from llava.adapters.inject import cast_adapters
from llava.adapters.io import load_adapters
from llava.model.builder import load_model, resolve_dtype

BASE_NAME = "llava_base.json"


def write_base_info(directory: str, model_name_or_path: str, vision_tower: str | None,
                    pretrain_mm_mlp_adapter: str | None, model_seed: int, template: str,
                    image_aspect_ratio: str, task_names: list[str], bits: int = 16) -> None:
    os.makedirs(directory, exist_ok=True)
    info = dict(model_name_or_path=model_name_or_path, vision_tower=vision_tower,
                pretrain_mm_mlp_adapter=pretrain_mm_mlp_adapter, model_seed=model_seed, version=template,
                image_aspect_ratio=image_aspect_ratio, task_names=task_names, bits=bits)
    with open(os.path.join(directory, BASE_NAME), "w") as f:
        json.dump(info, f, indent=2)


def read_base_info(directory: str) -> dict:
    path = os.path.join(directory, BASE_NAME)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{directory} has no {BASE_NAME}: not a llava-asymlora checkpoint")
    with open(path) as f:
        return json.load(f)


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
