"""QLoRA: the frozen language model in 4 or 8 bits through transformers' `BitsAndBytesConfig` (the `quant` extra).

As LLaVA's `--bits`: only the language model's linear layers are quantized; the vision tower, the projector and
lm_head stay in the training dtype, and adapters are full-precision modules beside the quantized weights.
"""

from __future__ import annotations

import tempfile

import torch
from transformers import BitsAndBytesConfig, LlavaForConditionalGeneration

from llava.extras import require_extra

# transformers matches these from the start of a module name (as regexes) or as a suffix
SKIP_MODULES = [r".*vision_tower", r".*multi_modal_projector", "lm_head"]


def quantization_config(bits: int, dtype: torch.dtype) -> BitsAndBytesConfig | None:
    if bits in (16, 32):
        return None
    if bits not in (4, 8):
        raise ValueError(f"--bits must be 4, 8 or 16, got {bits}")
    require_extra("bitsandbytes", "quant", f"--bits {bits}")
    if bits == 4:
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True,
                                  bnb_4bit_quant_type="nf4", llm_int8_skip_modules=SKIP_MODULES)
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=6.0, llm_int8_skip_modules=SKIP_MODULES)


def quantize_tiny(model: LlavaForConditionalGeneration, config: BitsAndBytesConfig, dtype: torch.dtype):
    """The tiny preset is built in memory; quantize it by the same `from_pretrained` path a checkpoint takes."""
    with tempfile.TemporaryDirectory(prefix="llava-tiny-") as tmp:
        model.save_pretrained(tmp)
        return LlavaForConditionalGeneration.from_pretrained(tmp, dtype=dtype, quantization_config=config,
                                                             attn_implementation=model.config._attn_implementation)
