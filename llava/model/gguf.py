"""A .gguf language model, converted once into a transformers directory in the user cache.

transformers de-quantizes a GGUF file and rebuilds its tokenizer in Python on every load, in every process; the
converted directory (safetensors + tokenizer files) loads far faster and holds the same tensors, so every later run, rank and worker pays the conversion only once. Keyed by the file's path, size and
mtime; written to a temp dir and renamed, so concurrent ranks never read a half-written entry.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os

import torch
from safetensors.torch import save_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from llava.cache import cache_dir, publish_dir
from llava.console import library_bar_as_nothing
from llava.model.zero import zero3_paused

DONE = "converted.ok"


def _save_plain(lm, directory: str) -> None:
    """The de-quantized model as an ordinary checkpoint. transformers' save_pretrained refuses a model that still
    carries its GGUF quantizer, although its tensors are plain fp32 by now; the config is written without it."""
    config = lm.config.to_dict()
    config.pop("quantization_config", None)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    lm.generation_config.save_pretrained(directory)
    save_model(lm, os.path.join(directory, "model.safetensors"))  # writes a tied head once


def cache_entry(path: str) -> str:
    """The cache directory for this file as it is now (path, size, mtime)."""
    stat = os.stat(path)
    key = hashlib.sha256(f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:20]
    return os.path.join(cache_dir("gguf"), f"{os.path.basename(path)[:-5]}-{key}")


def converted_gguf_dir(path: str) -> str:
    """A transformers directory with the de-quantized (fp32) LM and tokenizer of the .gguf file at `path`."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"language model file {path} not found")
    path = os.path.abspath(path)
    target = cache_entry(path)
    if os.path.exists(os.path.join(target, DONE)):
        return target
    if importlib.util.find_spec("gguf") is None:
        raise ImportError("loading a .gguf language model needs the gguf package: pip install gguf")
    folder, name = os.path.dirname(path), os.path.basename(path)
    with zero3_paused(), library_bar_as_nothing("Converting and de-quantizing GGUF tensors"):
        # the whole tensors are written to disk; ZeRO-3 partitions them when the dir is loaded
        lm = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, use_fast=True)

    def write(directory: str) -> None:
        _save_plain(lm, directory)
        tokenizer.save_pretrained(directory)

    return publish_dir(target, write, DONE)
