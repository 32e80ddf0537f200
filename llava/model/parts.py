"""LLaVA from parts: a CLIP vision tower dir + a Llama/Vicuna dir (or one .gguf file) + an optional stage-1 projector.

The tower and the LM are loaded by transformers' own `from_pretrained` (so under ZeRO-3 they arrive partitioned,
inside `zero.Init`) and put into a `LlavaForConditionalGeneration` skeleton built on the meta device; only the
projector is new. Nothing is re-initialised, so the LM inside LLaVA computes exactly what the bare LM computes.
"""

from __future__ import annotations

import os

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    CLIPVisionModel,
    LlavaConfig,
    LlavaForConditionalGeneration,
)
from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

from llava.data.preprocess import ensure_image_token
from llava.model.gguf import converted_gguf_dir
from llava.model.image import clip_image_processor
from llava.model.weights import load_projector
from llava.model.zero import gathered_for_write, zero3_paused


def load_vision_tower(path: str, dtype: torch.dtype, **kwargs) -> CLIPVisionModel:
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"vision tower {path!r} is not a local directory; download it once (e.g. openai/clip-vit-large-patch14-336) "
            "and pass --vision_tower /path/to/it"
        )
    return CLIPVisionModel.from_pretrained(path, dtype=dtype, **kwargs)


def _grow_embeddings(lm, vocab_size: int) -> None:
    """Resize to `vocab_size` (padded to a multiple of 64) with every new row = the mean of the old rows.

    transformers' default samples new rows at random, so a checkpoint's base could not be rebuilt identically;
    the mean is deterministic and is what LLaVA itself gives new tokens.
    """
    old = lm.config.get_text_config().vocab_size
    lm.resize_token_embeddings(vocab_size, pad_to_multiple_of=64, mean_resizing=False)
    tables = [lm.get_input_embeddings().weight]
    out = lm.get_output_embeddings()
    if out is not None and out.weight is not tables[0]:
        tables.append(out.weight)
    with gathered_for_write(tables), torch.no_grad():
        for table in tables:
            table[old:] = table[:old].mean(0, keepdim=True)


def assemble(vision_tower: CLIPVisionModel, lm, tokenizer, dtype: torch.dtype, attn_implementation: str):
    """Put a vision tower and a causal LM into one LlavaForConditionalGeneration without re-initialising either."""
    image_token = ensure_image_token(tokenizer)
    if len(tokenizer) > lm.config.get_text_config().vocab_size:
        _grow_embeddings(lm, len(tokenizer))
    vcfg = vision_tower.config
    config = LlavaConfig(
        vision_config=vcfg.to_dict(),
        text_config=lm.config.to_dict(),
        image_token_index=image_token,
        image_seq_length=(vcfg.image_size // vcfg.patch_size) ** 2,
        projector_hidden_act="gelu",
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    config._attn_implementation = attn_implementation
    with zero3_paused(), torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    model.model.vision_tower = vision_tower
    model.model.language_model = lm.model
    model.lm_head = lm.lm_head
    # A new, whole module on every rank (seeded alike); DeepSpeed partitions it when its engine starts.
    model.model.multi_modal_projector = LlavaMultiModalProjector(config).to(dtype)
    on_meta = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if on_meta:
        raise RuntimeError(f"assembling LLaVA left tensors uninitialised: {on_meta[:5]}")
    return model


def lm_location(path: str) -> str:
    """A Llama/Vicuna directory, or a single .gguf file (de-quantized once into the user cache: model/gguf.py)."""
    if path.endswith(".gguf"):
        return converted_gguf_dir(path)
    return path


def from_parts(vision_tower: str, language_model: str, projector: str | None = None, dtype=torch.float32,
               attn_implementation: str = "sdpa", quantization_config=None):
    """(model, tokenizer, image_processor) from a tower dir, an LM dir or .gguf file, and an optional projector."""
    tower = load_vision_tower(vision_tower, dtype)
    lm_dir = lm_location(language_model)
    quant = {} if quantization_config is None else {"quantization_config": quantization_config}
    lm = AutoModelForCausalLM.from_pretrained(lm_dir, dtype=dtype, attn_implementation=attn_implementation, **quant)
    tokenizer = AutoTokenizer.from_pretrained(lm_dir, use_fast=True)
    model = assemble(tower, lm, tokenizer, dtype, attn_implementation)
    if projector:
        load_projector(model, projector)
    return model, tokenizer, clip_image_processor(tower.config.image_size)
