"""Adapter checkpoints: `llava_adapters.json` + `llava_adapters.safetensors` (adapters, routers, projector).

Earlier versions wrote PEFT's file names (config.py says why that changed); `weights_path` still finds them."""

from __future__ import annotations

import os
import tempfile

import torch
from safetensors.torch import load_file, save_file

from llava.adapters.attached import adapter_config
from llava.adapters.config import AdapterConfig
from llava.adapters.inject import adapter_modules, inject_adapters
from llava.model.anatomy import projector_parameter_names

WEIGHTS_NAME = "llava_adapters.safetensors"
LEGACY_WEIGHTS_NAME = "adapter_model.safetensors"


def weights_path(directory: str) -> str | None:
    """The adapter weights of a checkpoint directory (current name, else an earlier version's), or None."""
    for name in (WEIGHTS_NAME, LEGACY_WEIGHTS_NAME):
        if os.path.exists(os.path.join(directory, name)):
            return os.path.join(directory, name)
    return None
PROJECTOR_PREFIX = "model.multi_modal_projector."  # LLaVA-1.5's; any family's: anatomy.projector_parameter_names


def adapter_state_dict(model, include_projector: bool = True) -> dict[str, torch.Tensor]:
    """Every adapter parameter (A, B heads, routers, factor pools) and, optionally, the projector."""
    out = {}
    for name, module in adapter_modules(model):
        for pname, p in module.named_parameters():
            if not pname.startswith("base."):
                out[f"{name}.{pname}"] = p
    if include_projector:
        names = projector_parameter_names(model)
        out.update({n: p for n, p in model.named_parameters() if n in names})
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_save_file(tensors: dict[str, torch.Tensor], path: str, metadata: dict | None = None) -> None:
    """Write safetensors to a temporary file in the same directory, then rename: readers never see half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=directory)
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp,
                  metadata=metadata or {"format": "pt"})
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the rest of a checkpoint follows the umask
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_adapters(model, directory: str, include_projector: bool = True, state_dict=None) -> None:
    """Save config + weights; `state_dict` lets a ZeRO-3 caller pass already-gathered tensors."""
    config: AdapterConfig = adapter_config(model)
    tensors = state_dict if state_dict is not None else adapter_state_dict(model, include_projector)
    atomic_save_file(tensors, os.path.join(directory, WEIGHTS_NAME))
    config.save(directory)


def load_adapters(model, directory: str) -> AdapterConfig:
    """Inject (if needed) and load adapters + projector from `directory`; mismatched keys are an error."""
    config = AdapterConfig.load(directory)
    if adapter_config(model) is None:
        inject_adapters(model, config)
    elif adapter_config(model).to_dict() != config.to_dict():
        raise ValueError(f"{directory}: adapter config differs from the one injected in the model")
    load_adapter_weights(model, directory)
    return config


def load_adapter_weights(model, directory: str) -> None:
    """Copy `directory`'s adapter (+ projector) tensors into a model that already has the same adapters."""
    path = weights_path(directory)
    if path is None:
        raise FileNotFoundError(f"no {WEIGHTS_NAME} in {directory}")
    saved = load_file(path)
    params = adapter_state_dict(model, include_projector=True)
    projector = projector_parameter_names(model)  # a run that froze the projector saved none
    missing = [k for k in params if k not in saved and k not in projector]
    unexpected = [k for k in saved if k not in params]
    if missing or unexpected:
        raise KeyError(f"{path}: adapter weights do not match the model (missing {missing[:5]}, "
                       f"unexpected {unexpected[:5]})")
    with torch.no_grad():
        for key, value in saved.items():
            target = params[key]
            if target.shape != value.shape:
                raise ValueError(f"{path}: {key} has shape {tuple(value.shape)}, model expects {tuple(target.shape)}")
            target.copy_(value.to(target.dtype))
