"""The adapter family: lora, asymlora (shared A, task x expert B heads), moe_lora, mixlora - one code path.

The names below load on first use (PEP 562), so `python -m llava.adapters.presets`, which every training script runs,
does not import torch.
"""

from __future__ import annotations

from llava.lazy_names import lazy_names

_HOMES = {
    "AdapterConfig": "config", "AdapterLinear": "layer", "inject_adapters": "inject",
    "print_trainable_parameters": "inject", "save_adapters": "io", "load_adapters": "io", "merge_adapters": "merge",
    "unload_adapters": "merge", "export_peft": "export", "adapter_batch": "attached", "set_adapter_batch": "attached",
}
__all__ = list(_HOMES)

__getattr__ = lazy_names(__name__, _HOMES)
