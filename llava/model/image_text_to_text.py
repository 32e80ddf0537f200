"""Any image-text-to-text model transformers ships (LLaVA-NeXT, LLaVA-OneVision, Qwen2.5-VL, Qwen3-VL, Idefics3,
SmolVLM, Gemma 3, InternVL, ...) from a local directory, through transformers' own classes: its model class, its
processor (image handling, chat template). LLaVA-1.5 keeps its own sources (parts, original checkpoints, llava-hf)."""

from __future__ import annotations

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

# model types served by LLaVA-1.5's own loading (llava-hf directories, original LLaVA checkpoints)
LLAVA_1_5 = ("llava", "llava_llama")


def is_image_text_to_text(model_type: str | None) -> bool:
    return model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES and model_type not in LLAVA_1_5


def is_processor(image_processor) -> bool:
    """A whole processor (tokenizer + image processor + chat template: another family than LLaVA-1.5), where
    LLaVA-1.5's sources give an image processor."""
    return hasattr(image_processor, "apply_chat_template") and hasattr(image_processor, "tokenizer")


def from_image_text_to_text(path: str, dtype=torch.float32, attn_implementation: str = "sdpa",
                            quantization_config=None):
    """(model, tokenizer, processor); training pads on the right (the processor's tokenizer may pad left for
    generation: a checkpoint's saved processor keeps what it was given)."""
    kwargs = {"quantization_config": quantization_config} if quantization_config is not None else {}
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, attn_implementation=attn_implementation,
                                                        **kwargs)
    processor = AutoProcessor.from_pretrained(path)
    if processor.chat_template is None:
        raise ValueError(f"{path}: the processor has no chat template (chat_template.jinja or chat_template.json); "
                         "records become the model's conversations through it")
    return model, processor.tokenizer, processor
