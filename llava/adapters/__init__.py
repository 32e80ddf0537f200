"""The adapter family: lora, asymlora (shared A, task x expert B heads), moe_lora, mixlora - one code path.

The names below load on first use (PEP 562), so `python -m llava.adapters.presets`, which every training script runs,
does not import torch.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "AdapterConfig": "config", "AdapterLinear": "layer", "inject_adapters": "inject",
    "print_trainable_parameters": "inject", "save_adapters": "io", "load_adapters": "io", "merge_adapters": "merge",
    "unload_adapters": "merge", "export_peft": "export", "adapter_batch": "attached", "set_adapter_batch": "attached",
}
__all__ = list(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
