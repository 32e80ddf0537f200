"""Weight files as LLaVA users have them: safetensors or torch pickles (read tensors-only), original LLaVA key names.

Original LLaVA (haotian-liu/LLaVA) checkpoints name the projector `model.mm_projector.{0,2}` and the tower
`model.vision_tower.vision_tower.*`; transformers' LlavaForConditionalGeneration names them
`model.multi_modal_projector.linear_{1,2}` and `model.vision_tower.*`.
"""

from __future__ import annotations

import glob
import os
import pickle
import re

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from llava.model.zero import gathered_for_write

# Order matters: the first matching pattern wins.
ORIGINAL_KEY_MAP = [
    (r"^model\.mm_projector\.0\.", "model.multi_modal_projector.linear_1."),
    (r"^model\.mm_projector\.2\.", "model.multi_modal_projector.linear_2."),
    (r"^model\.vision_tower\.vision_tower\.", "model.vision_tower."),
    (r"^model\.", "model.language_model."),
    (r"^lm_head\.", "lm_head."),
]
PROJECTOR_KEY = "model.mm_projector."
TOWER_KEY = "model.vision_tower.vision_tower."


def map_original_key(key: str) -> str:
    for pattern, repl in ORIGINAL_KEY_MAP:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key, count=1)
    raise KeyError(f"unexpected key {key!r} in an original LLaVA checkpoint")


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """safetensors, or a torch pickle loaded with weights_only=True (tensors only, no code execution)."""
    if path.endswith(".safetensors"):
        return load_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise ValueError(f"refused to load {path}: not a tensors-only checkpoint ({type(err).__name__}: {err})") from err


def weight_files(directory: str) -> list[str]:
    files = sorted(glob.glob(os.path.join(directory, "*.safetensors"))) or sorted(
        glob.glob(os.path.join(directory, "pytorch_model*.bin")))
    if not files:
        raise FileNotFoundError(f"no *.safetensors or pytorch_model*.bin weights in {directory}")
    return files


def read_prefixed(directory: str, prefix: str) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint directory whose keys start with `prefix`, without holding the rest in memory
    (safetensors are read key by key; a pickle shard is memory-mapped)."""
    out: dict[str, torch.Tensor] = {}
    for path in weight_files(directory):
        if path.endswith(".safetensors"):
            with safe_open(path, framework="pt") as f:
                out.update({k: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)})
        else:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            out.update({k: v.clone() for k, v in state.items() if k.startswith(prefix)})
    return out


def copy_into(module: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Write `tensors` (names relative to `module`) into its parameters; every parameter must be covered.
    ZeRO-3 partitioned parameters are gathered, written on rank 0 and re-partitioned."""
    params = dict(module.named_parameters())
    if set(tensors) != set(params):
        raise KeyError(f"{where}: keys do not match (missing {sorted(set(params) - set(tensors))[:5]}, "
                       f"unexpected {sorted(set(tensors) - set(params))[:5]})")
    with gathered_for_write(params.values()), torch.no_grad():
        for key, value in tensors.items():
            if tuple(params[key].shape) != tuple(value.shape):
                raise ValueError(f"{where}: {key} has shape {tuple(value.shape)}, model expects "
                                 f"{tuple(params[key].shape)}")
            params[key].copy_(value.to(params[key].dtype))


def load_projector_weights(projector: torch.nn.Module, raw: dict[str, torch.Tensor], where: str) -> None:
    """LLaVA projector tensors (`model.mm_projector.{0,2}.*`) into a LlavaMultiModalProjector."""
    mapped = {}
    for key, value in raw.items():
        new = map_original_key(key)
        if not new.startswith("model.multi_modal_projector."):
            raise KeyError(f"{where}: key {key!r} is not a projector key (expected model.mm_projector.0/2.*)")
        mapped[new.removeprefix("model.multi_modal_projector.")] = value
    copy_into(projector, mapped, where)


def load_projector(model, path: str) -> None:
    """Load a LLaVA stage-1 projector (`mm_projector.bin`/`.safetensors`) into the model."""
    load_projector_weights(model.model.multi_modal_projector, read_state_dict(path), path)
