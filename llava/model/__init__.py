"""Build and load a LlavaForConditionalGeneration from what users have on disk: presets (tiny; small from the kit),
a llava-hf directory, an original LLaVA checkpoint, parts (CLIP dir + LM dir or .gguf + mm_projector.bin); 4/8-bit
language models; ZeRO-3 loading; image preparation; export to llava-hf. Checkpoints are llava/checkpoint.py's."""

from llava.model.builder import load_model, load_projector, save_original_llava

__all__ = ["load_model", "load_projector", "save_original_llava"]
