"""moe_lora: E full LoRA pairs, Acat (E r x d_in) and Bcat (d_out x E r); u = g_e(x) * (A_e x) per expert."""

from __future__ import annotations

import torch
from torch import nn

from llava.adapters.routing import Router
from llava.adapters.schemes.base import Scheme, expert_gates, scaled_projection


class MoELoRA(Scheme):
    name = "moe_lora"
    token_routed = True
    routers = True

    @staticmethod
    def check(r: int, num_experts: int, num_tasks: int) -> None:
        if num_tasks != 1:
            raise ValueError("num_tasks > 1 is an asymlora option; moe_lora routes on the input only")

    @staticmethod
    def create(layer, d_in: int, d_out: int, router_kw: dict, kw: dict) -> None:
        layer.lora_A = nn.Parameter(torch.empty(layer.num_experts * layer.r, d_in, **kw))
        layer.lora_B = nn.Parameter(torch.zeros(d_out, layer.num_experts * layer.r, **kw))
        if layer.num_experts > 1 and layer.block_router is None:
            layer.router = Router(d_in, layer.num_experts, **router_kw, **kw)

    @staticmethod
    def num_heads(layer) -> int:
        return layer.num_experts

    @staticmethod
    def head_inputs(layer, x):
        z = scaled_projection(layer, x)
        if layer.num_experts == 1:
            return z, None
        gates, aux = expert_gates(layer, x)
        return (gates.unsqueeze(-1) * z.unflatten(-1, (layer.num_experts, layer.r))).flatten(-2), aux
