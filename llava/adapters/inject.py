"""Put adapters into a model: only the language model's linear layers (llava/model/anatomy.py finds it in any
image-text-to-text family), never the vision tower, the projector or lm_head."""

from __future__ import annotations

import logging

import torch
from torch import nn

from llava.adapters.attached import adapters_of, attach
from llava.adapters.config import AdapterConfig
from llava.adapters.layer import AdapterLinear
from llava.adapters.routing import BlockRouter, Router
from llava.adapters.schemes import scheme as scheme_class
from llava.adapters.state import RoutingState
from llava.model.anatomy import language_model, projector

logger = logging.getLogger(__name__)


def adapter_modules(model: nn.Module):
    """(name, module) for every AdapterLinear and BlockRouter in the model."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (AdapterLinear, BlockRouter))]


def _adapter_dtype(config: AdapterConfig, base: nn.Linear) -> torch.dtype:
    if config.adapter_dtype == "base" and base.weight.dtype.is_floating_point:
        return base.weight.dtype
    return torch.float32


def excluded_modules(lm: nn.Module, layers: list[int] | None) -> set[int]:
    """ids of the modules inside decoder layers not in `layers` (empty where `layers` is None: every layer)."""
    if layers is None:
        return set()
    decoder = list(lm.layers)
    if max(layers) >= len(decoder):
        raise ValueError(f"adapter layers {layers}: the language model has decoder layers 0-{len(decoder) - 1}")
    return {id(m) for i, layer in enumerate(decoder) if i not in layers for m in layer.modules()}


def inject_adapters(model: nn.Module, config: AdapterConfig, train_projector: bool = True) -> nn.Module:
    """Freeze the model, wrap the target linears of its language model, and make adapters (+ projector) trainable."""
    if adapters_of(model) is not None:
        raise ValueError("model already has adapters")
    lm = language_model(model)
    state = RoutingState(config.balance_loss)
    for p in model.parameters():
        p.requires_grad_(False)
    block_routers: dict[int, BlockRouter] = {}
    wrapped = 0
    excluded = excluded_modules(lm, config.layers)
    for name, module in list(lm.named_modules()):
        for child_name, child in list(module.named_children()):
            if child_name not in config.targets or not isinstance(child, nn.Linear) or id(child) in excluded:
                continue
            scheme = config.scheme_for(child_name)
            block = None
            spec = scheme_class(scheme)
            routed = spec.token_routed and config.num_experts > 1
            if routed and config.router_scope == "mlp_block":
                if not all(hasattr(module, n) for n in ("gate_proj", "up_proj", "down_proj")):
                    raise ValueError(f"router_scope='mlp_block' needs mixture targets inside the MLP; {name}.{child_name} "
                                     "is not (set mixture_targets to gate_proj/up_proj/down_proj or use 'module')")
                if id(module) not in block_routers:
                    hidden = module.gate_proj.in_features
                    router = BlockRouter(module, hidden, config.num_experts, state, router=config.router,
                                         top_k=config.top_k, dtype=_adapter_dtype(config, child),
                                         device=child.weight.device, bias=config.router_bias,
                                         router_input=config.router_input)
                    module.add_module("adapter_router", router)
                    block_routers[id(module)] = router
                block = block_routers[id(module)]
            layer = AdapterLinear(child, scheme, config.r, config.alpha, config.dropout,
                                  # the mixture's scheme gets the experts; the other targets are plain lora
                                  num_experts=config.num_experts if scheme == config.scheme else 1,
                                  num_tasks=config.num_tasks if spec.task_heads else 1,
                                  router=config.router, top_k=config.top_k, state=state, block_router=block,
                                  dtype=_adapter_dtype(config, child), router_bias=config.router_bias,
                                  router_input=config.router_input)
            setattr(module, child_name, layer)
            wrapped += 1
    if wrapped == 0:
        raise ValueError(f"no linear layer named {config.targets} in the language model")
    for m in lm.modules():
        if isinstance(m, Router):
            m.configure(config.router_temperature, config.router_noise, config.router_init)
    for _, m in adapter_modules(model):
        for pname, p in m.named_parameters():
            if not pname.startswith("base."):
                p.requires_grad_(True)
    proj = projector(model)
    if proj is not None and train_projector:
        for p in proj.parameters():
            p.requires_grad_(True)
    attach(model, config, state)
    return model


def cast_adapters(model: nn.Module, dtype: torch.dtype) -> None:
    """Adapter and router weights to `dtype` in place. For inference in the activation dtype: fp32 adapter weights
    (training's masters) would otherwise be cast again in every layer at every decoding step."""
    for _, module in adapter_modules(model):
        for name, p in module.named_parameters():
            if not name.startswith("base.") and p.dtype != dtype and p.dtype.is_floating_point:
                p.data = p.data.to(dtype)


def trainable_parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) full sizes; ZeRO-3 partitioned parameters count with their full `ds_numel`."""
    sizes = [(getattr(p, "ds_numel", p.numel()), p.requires_grad) for p in model.parameters()]
    return sum(n for n, grad in sizes if grad), sum(n for n, _ in sizes)


def print_trainable_parameters(model: nn.Module) -> str:
    """PEFT's line: 'trainable params: N || all params: M || trainable%: P'."""
    trainable, total = trainable_parameter_counts(model)
    line = f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {100 * trainable / total:.4f}"
    print(line)
    return line
