"""Build the model to train from what users actually have on disk: LLaVA-1.5 as `LlavaForConditionalGeneration`, or
any other image-text-to-text family through transformers' own classes.

Seven sources, one result (model, tokenizer, image processor, or for another family its whole processor):
  * "tiny"                         -> the preset in `tiny.py` (random, for tests);
  * "small"                        -> the experiment kit's preset (llava/kit/small.py: SmolLM2-135M + a cached
                                      easy-vqa-trained tower), imported only when asked for;
  * a llava-hf directory           -> `LlavaForConditionalGeneration.from_pretrained`;
  * an original LLaVA checkpoint   -> `original.py` (Llama weights + `model.mm_projector.*`);
  * another family's directory     -> `image_text_to_text.py` (LLaVA-NeXT, Qwen2.5-VL, Idefics3, Gemma 3, ...);
  * parts                          -> `parts.py`: a CLIP vision tower dir + a Llama/Vicuna dir or one .gguf file
                                      + an optional stage-1 `mm_projector.bin` / `.safetensors`.
Every source builds under DeepSpeed ZeRO-3 (weights arrive partitioned) and, with `bits`, with the language model
quantized by bitsandbytes (QLoRA: `quant.py`).
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import pickle

import torch
from transformers import AutoTokenizer, CLIPImageProcessorPil, LlavaForConditionalGeneration

from llava.data.preprocess import ensure_image_token
from llava.model.image import clip_image_processor
from llava.model.image_text_to_text import from_image_text_to_text, is_image_text_to_text
from llava.model.original import from_original_llava, save_original_llava
from llava.model.parts import from_parts
from llava.model.quant import quantization_config, quantize_tiny
from llava.model.tiny import build_tiny
from llava.model.weights import load_projector, map_original_key
from llava.model.zero import zero3_paused

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "fp16": torch.float16, "float16": torch.float16}


def resolve_dtype(name: str | torch.dtype) -> torch.dtype:
    if isinstance(name, torch.dtype):
        return name
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; choose one of {sorted(DTYPES)}")
    return DTYPES[name]


def resolve_attn_implementation(requested: str | None) -> str:
    """sdpa by default; flash_attention_2 only when flash-attn is installed (the `flash` extra)."""
    if requested in (None, "", "auto", "sdpa"):
        return "sdpa"
    if requested == "flash_attention_2":
        if importlib.util.find_spec("flash_attn") is None:
            raise ImportError("attn_implementation='flash_attention_2' needs flash-attn: pip install 'llava-asymlora[flash]'")
        return requested
    if requested == "eager":
        return requested
    raise ValueError(f"unknown attn_implementation {requested!r} (sdpa, eager, flash_attention_2)")


def from_llava_hf(path: str, dtype=torch.float32, attn_implementation: str = "sdpa", quantization_config=None):
    kwargs = {"quantization_config": quantization_config} if quantization_config is not None else {}
    model = LlavaForConditionalGeneration.from_pretrained(path, dtype=dtype, attn_implementation=attn_implementation,
                                                          **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True)
    ensure_image_token(tokenizer)
    if os.path.exists(os.path.join(path, "preprocessor_config.json")):
        image_processor = CLIPImageProcessorPil.from_pretrained(path)
    else:
        image_processor = clip_image_processor(model.config.vision_config.image_size)
    return model, tokenizer, image_processor


def detect_source(path: str) -> str:
    if path in ("tiny", "small"):
        return path
    if path.endswith(".gguf"):
        return "language_model"
    cfg_path = os.path.join(path, "config.json")
    if not os.path.exists(cfg_path):
        raise FileNotFoundError(f"{path!r} is neither a preset (tiny, small), a .gguf file, nor a directory with a config.json")
    with open(cfg_path) as f:
        raw = json.load(f)
    if raw.get("model_type") == "llava" and "text_config" in raw:
        return "llava_hf"
    if is_image_text_to_text(raw.get("model_type")):
        return "image_text_to_text"
    if "mm_vision_tower" in raw or raw.get("model_type") in ("llava_llama", "llava"):
        return "original"
    return "language_model"


def load_model(model_name_or_path: str, vision_tower: str | None = None, pretrain_mm_mlp_adapter: str | None = None,
               dtype="fp32", attn_implementation: str | None = None, seed: int = 0, bits: int = 16):
    """Return (model, tokenizer, image_processor) for any supported source; see the module docstring.

    `bits` 4 or 8 loads the language model's linear layers quantized (bitsandbytes); the vision tower, projector
    and lm_head stay in `dtype`.
    """
    try:
        return _load_model(model_name_or_path, vision_tower, pretrain_mm_mlp_adapter, dtype, attn_implementation,
                           seed, bits)
    except pickle.UnpicklingError as err:  # transformers' weights_only refusal does not say which file
        folders = [p for p in (model_name_or_path, vision_tower) if p and os.path.isdir(p)]
        pickles = [f for d in folders for f in sorted(glob.glob(os.path.join(d, "*.bin")))]
        raise ValueError(f"refused to load {', '.join(pickles) or model_name_or_path}: not a tensors-only weight "
                         f"file (nothing in it was run): {str(err).splitlines()[0]}") from err


def _load_model(model_name_or_path, vision_tower, pretrain_mm_mlp_adapter, dtype, attn_implementation, seed, bits):
    source = detect_source(model_name_or_path)
    dtype = resolve_dtype(dtype)
    attn = resolve_attn_implementation(attn_implementation)
    quant = quantization_config(bits, dtype)
    if source == "tiny":
        with zero3_paused():  # seeded on every rank alike; DeepSpeed partitions it at engine start
            model, tokenizer = build_tiny(seed=seed, dtype=dtype, attn_implementation=attn)
        if quant is not None:
            model = quantize_tiny(model, quant, dtype)
        image_processor = clip_image_processor(model.config.vision_config.image_size)
    elif source == "small":
        from llava.kit.small import build_small  # the kit sits above the core: only a small-preset load pulls it in

        model, tokenizer, image_processor = build_small(dtype, attn, quant)
    elif source == "llava_hf":
        model, tokenizer, image_processor = from_llava_hf(model_name_or_path, dtype, attn, quant)
    elif source == "image_text_to_text":
        model, tokenizer, image_processor = from_image_text_to_text(model_name_or_path, dtype, attn, quant)
    elif source == "original":
        model, tokenizer, image_processor = from_original_llava(model_name_or_path, vision_tower, dtype, attn, quant)
    else:
        if not vision_tower:
            raise ValueError(f"{model_name_or_path} is a language model; building LLaVA from parts needs --vision_tower")
        model, tokenizer, image_processor = from_parts(vision_tower, model_name_or_path, None, dtype, attn, quant)
    if pretrain_mm_mlp_adapter:
        load_projector(model, pretrain_mm_mlp_adapter)
    return model, tokenizer, image_processor


__all__ = ["load_model", "from_parts", "from_llava_hf", "from_original_llava", "load_projector", "map_original_key",
           "save_original_llava", "resolve_dtype", "resolve_attn_implementation", "detect_source"]
