"""Export a lora adapter (+ the trained projector) in PEFT's format, loadable by `PeftModel.from_pretrained` on the
base model: LLaVA-1.5 or any family (the projector found as model/anatomy.py finds it)."""

from __future__ import annotations

import json
import os

from llava.adapters.attached import adapter_config
from llava.adapters.inject import adapter_modules
from llava.adapters.io import atomic_save_file
from llava.adapters.layer import AdapterLinear
from llava.model import anatomy


def export_peft(model, directory: str, base_model_name_or_path: str | None = None,
                projector: bool | None = None) -> None:
    """`projector`: whether the projector was trained and goes with the adapter (None: where it requires grad, as in
    a model being trained; a checkpoint says by holding its tensors)."""
    config = adapter_config(model)
    layers = [(n, m) for n, m in adapter_modules(model) if isinstance(m, AdapterLinear)]
    not_plain = sorted({m.scheme for _, m in layers if not m.is_plain})
    if not_plain:
        raise ValueError(f"PEFT has no format for {not_plain} adapters; only plain lora exports (merge or keep ours)")
    tensors = {}
    for name, m in layers:
        tensors[f"base_model.model.{name}.lora_A.weight"] = m.lora_A
        tensors[f"base_model.model.{name}.lora_B.weight"] = m.lora_B
    projector_names = anatomy.projector_parameter_names(model)
    parts = {n: p for n, p in model.named_parameters() if n in projector_names}
    trained_projector = any(p.requires_grad for p in parts.values()) if projector is None else projector
    to_save = None
    if trained_projector:
        to_save = projector_modules(model)
        tensors.update({f"base_model.model.{n}": p for n, p in parts.items()})
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
        "modules_to_save": to_save,
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


def projector_modules(model) -> list[str]:
    """The trained projector as PEFT's modules_to_save: each part's full module name (PEFT matches a name as a dotted
    suffix, so `model.connector`, not `connector`). A part that is a bare parameter (LLaVA-NeXT's and OneVision's
    image_newline) has no place there: such a model is merged instead."""
    names = {id(module): name for name, module in model.named_modules()}
    bare = [name for name, part in anatomy.projector_parts(model) if id(part) not in names]
    if bare:
        raise ValueError(f"PEFT's modules_to_save holds modules, and this trained projector has the bare parameter(s) "
                         f"{bare}: merge the checkpoint instead (llava-merge)")
    return sorted(names[id(part)] for _, part in anatomy.projector_parts(model))
