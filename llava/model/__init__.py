"""Build and load LlavaForConditionalGeneration models (tiny preset, llava-hf, original LLaVA, parts)."""

from llava.model.builder import load_model, load_projector, save_original_llava

__all__ = ["load_model", "load_projector", "save_original_llava"]
