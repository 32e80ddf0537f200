"""The adapter schemes, one file each, as PEFT keeps its LoRA variants: what a scheme adds to a frozen linear
(its parameters, its head inputs, its dense delta) and what it means for the rest of the code (task heads, routers,
the unit its router load counts). Everything outside this package asks the scheme, never tests its name."""

from __future__ import annotations

from llava.adapters.schemes.asymlora import AsymLoRA
from llava.adapters.schemes.base import Scheme
from llava.adapters.schemes.lora import LoRA
from llava.adapters.schemes.mixlora import MixLoRA
from llava.adapters.schemes.moe_lora import MoELoRA

REGISTRY: dict[str, type[Scheme]] = {s.name: s for s in (LoRA, AsymLoRA, MoELoRA, MixLoRA)}
NAMES = tuple(REGISTRY)


def scheme(name: str) -> type[Scheme]:
    if name not in REGISTRY:
        raise ValueError(f"unknown adapter scheme {name!r}; choose one of {NAMES}")
    return REGISTRY[name]


__all__ = ["REGISTRY", "NAMES", "Scheme", "scheme", "LoRA", "AsymLoRA", "MoELoRA", "MixLoRA"]
