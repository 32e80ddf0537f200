"""lora: one A (r x d_in), one B (d_out x r); u = s A x."""

from __future__ import annotations

import torch
from torch import nn

from llava.adapters.schemes.base import Scheme, plain_delta, scaled_projection


class LoRA(Scheme):
    name = "lora"
    plain = True

    @staticmethod
    def check(r: int, num_experts: int, num_tasks: int) -> None:
        if num_experts != 1 or num_tasks != 1:
            raise ValueError("scheme 'lora' has one head: num_experts and num_tasks must be 1 (use asymlora)")

    @staticmethod
    def create(layer, d_in: int, d_out: int, router_kw: dict, kw: dict) -> None:
        layer.lora_A = nn.Parameter(torch.empty(layer.r, d_in, **kw))
        layer.lora_B = nn.Parameter(torch.zeros(d_out, layer.r, **kw))

    @staticmethod
    def is_plain(layer) -> bool:
        return True

    @staticmethod
    def head_inputs(layer, x):
        return scaled_projection(layer, x), None

    @staticmethod
    def delta_weight(layer, task):
        return plain_delta(layer)
