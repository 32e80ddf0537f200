"""asymlora: one shared A (r x d_in) and H = T*E B heads in Bcat (d_out x H r), ordered task-major (head = t*E + e).

Gates over heads = onehot(task) ⊗ g(x): heads of other tasks see u = 0 and so get exactly zero gradient from the
batch. T=E=1 is plain LoRA; E=1 with T tasks merges per task; routed heads (E > 1) depend on the input."""

from __future__ import annotations

import torch
from torch import nn

from llava.adapters.routing import Router
from llava.adapters.schemes.base import Scheme, expert_gates, plain_delta, scaled_projection, task_onehot


class AsymLoRA(Scheme):
    name = "asymlora"
    task_heads = True
    token_routed = True
    routers = True

    @staticmethod
    def create(layer, d_in: int, d_out: int, router_kw: dict, kw: dict) -> None:
        layer.lora_A = nn.Parameter(torch.empty(layer.r, d_in, **kw))
        layer.lora_B = nn.Parameter(torch.zeros(d_out, AsymLoRA.num_heads(layer) * layer.r, **kw))
        if layer.num_experts > 1 and layer.block_router is None:
            layer.router = Router(d_in, layer.num_experts, **router_kw, **kw)

    @staticmethod
    def num_heads(layer) -> int:
        return layer.num_tasks * layer.num_experts

    @staticmethod
    def is_plain(layer) -> bool:
        return AsymLoRA.num_heads(layer) == 1

    @staticmethod
    def head_inputs(layer, x):
        z = scaled_projection(layer, x)
        if AsymLoRA.num_heads(layer) == 1:
            return z, None
        aux = None
        if layer.num_experts > 1:
            gates, aux = expert_gates(layer, x)  # [..., E]
        else:
            gates = x.new_ones(*x.shape[:-1], 1)
        if layer.num_tasks > 1:
            gates = (task_onehot(layer, x).unsqueeze(-1) * gates.unsqueeze(-2)).flatten(-2)
        return (gates.unsqueeze(-1) * z.unsqueeze(-2)).flatten(-2), aux

    @staticmethod
    def delta_weight(layer, task):
        if AsymLoRA.num_heads(layer) == 1:
            return plain_delta(layer)
        if layer.num_experts == 1:
            if task is None:
                raise ValueError(f"asymlora with {layer.num_tasks} task heads merges per task: pass task=")
            return layer.scaling * (layer.head_B(task).float() @ layer.lora_A.float())
        return Scheme.delta_weight(layer, task)
