"""Export a lora adapter (+ the trained projector) in PEFT's format, loadable by `PeftModel.from_pretrained`."""

from __future__ import annotations

import json
import os

from llava.adapters.attached import adapter_config
from llava.adapters.inject import adapter_modules
from llava.adapters.io import PROJECTOR_PREFIX, atomic_save_file
from llava.adapters.layer import AdapterLinear


def export_peft(model, directory: str, base_model_name_or_path: str | None = None) -> None:
    config = adapter_config(model)
    layers = [(n, m) for n, m in adapter_modules(model) if isinstance(m, AdapterLinear)]
    not_plain = sorted({m.scheme for _, m in layers if not m.is_plain})
    if not_plain:
        raise ValueError(f"PEFT has no format for {not_plain} adapters; only plain lora exports (merge or keep ours)")
    tensors = {}
    for name, m in layers:
        tensors[f"base_model.model.{name}.lora_A.weight"] = m.lora_A
        tensors[f"base_model.model.{name}.lora_B.weight"] = m.lora_B
    projector = {n: p for n, p in model.named_parameters() if n.startswith(PROJECTOR_PREFIX)}
    trained_projector = any(p.requires_grad for p in projector.values())
    if trained_projector:
        tensors.update({f"base_model.model.{n}": p for n, p in projector.items()})
    # The exact adapted modules (PEFT matches a listed name exactly or as a dotted suffix), so the export fits any
    # model inject_adapters accepts: LLaVA, or a bare causal LM whose layers are not under `language_model`.
    targets = sorted(name for name, _ in layers)
    peft_config = {
        "peft_type": "LORA",
        "task_type": None,
        "base_model_name_or_path": base_model_name_or_path,
        "r": config.r,
        "lora_alpha": config.alpha,
        "lora_dropout": config.dropout,
        "target_modules": targets,
        "modules_to_save": ["multi_modal_projector"] if trained_projector else None,
        "bias": "none",
        "fan_in_fan_out": False,
        "init_lora_weights": True,
        "use_rslora": False,
        "use_dora": False,
        "inference_mode": True,
    }
    os.makedirs(directory, exist_ok=True)
    atomic_save_file(tensors, os.path.join(directory, "adapter_model.safetensors"))
    with open(os.path.join(directory, "adapter_config.json"), "w") as f:
        json.dump(peft_config, f, indent=2)
