"""Fold adapters into the frozen weights where that is exact: lora, and asymlora per task when E=1.

CLI: llava-merge (llava/commands/merge.py)
"""

from __future__ import annotations

import torch

from llava.adapters.attached import adapter_config, detach
from llava.adapters.inject import adapter_modules
from llava.adapters.layer import AdapterLinear
from llava.adapters.routing import BlockRouter


def merge_adapters(model, task: str | int | None = None):
    """Replace every AdapterLinear by its base linear with W += s * B_task A. Raises where merging is not exact."""
    config = adapter_config(model)
    task_id = config.task_id(task)
    layers = [(n, m) for n, m in adapter_modules(model) if isinstance(m, AdapterLinear)]
    quantized = [n for n, m in layers if not m.base.weight.dtype.is_floating_point]
    if quantized:
        raise ValueError(f"{quantized[0]} wraps a quantized (4/8-bit) weight: merging would need de-quantizing; "
                         "reload the base in bf16/fp32 (no --bits) and merge that")
    deltas = [(m, m.delta_weight(task_id)) for _, m in layers]  # all checks before the first change
    with torch.no_grad():
        for module, delta in deltas:
            weight = module.base.weight  # the sum in fp32, one rounding to the base dtype
            weight.copy_((weight.float() + delta.float()).to(weight.dtype))
    return unload_adapters(model)


def unload_adapters(model):
    """Every wrapped linear back to its base linear, the routers and their hooks gone, nothing merged (PEFT's
    `unload`): the model as it was before inject_adapters, with the base weights it holds now."""
    for name, module in adapter_modules(model):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        if isinstance(module, AdapterLinear):
            setattr(parent, child, module.base)
        elif isinstance(module, BlockRouter):
            module.remove_hooks()
            delattr(parent, child)
    detach(model)
    return model
