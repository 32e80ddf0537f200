"""Build and load a LlavaForConditionalGeneration from what users have on disk: presets (tiny; small from the kit),
a llava-hf directory, an original LLaVA checkpoint, parts (CLIP dir + LM dir or .gguf + mm_projector.bin); 4/8-bit
language models; ZeRO-3 loading; image preparation; export to llava-hf. Checkpoints are llava/checkpoint.py's.

The names below load on first use (PEP 562), so `python -m llava.model.cpu_dtype`, which the scripts run before a CPU
run, imports torch only, not transformers.
"""

from __future__ import annotations

from llava.lazy_names import lazy_names

_HOMES = {"load_model": "builder", "load_projector": "builder", "save_original_llava": "builder"}
__all__ = list(_HOMES)

__getattr__ = lazy_names(__name__, _HOMES)
