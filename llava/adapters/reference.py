"""Unfused reference forms of the routed adapters, as the original MLLM-HydraLoRA code computes them.

Not used in training: tests check the fused layer against these, and bench/ times them as the baseline.
Per expert it recomputes x A (or x A_e), materialises [..., E, d_out], then mixes: a python loop over experts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from llava.adapters.layer import AdapterLinear


def loop_delta(layer: AdapterLinear, x: torch.Tensor, gates: torch.Tensor, task_ids: torch.Tensor | None = None):
    """delta(x) of an asymlora / moe_lora layer computed expert by expert; gates: [..., E]."""
    r, num_experts = layer.r, layer.num_experts
    h = layer.dropout(x)
    outs = []
    for e in range(num_experts):
        if not layer.variant.task_heads:  # moe_lora: an A per expert
            a = layer.lora_A[e * r:(e + 1) * r]
            b = layer.head_B(e)
            outs.append(F.linear(F.linear(h, a), b))
        else:
            if layer.num_tasks > 1:
                per_task = torch.stack([F.linear(F.linear(h, layer.lora_A), layer.head_B(t * num_experts + e))
                                        for t in range(layer.num_tasks)], dim=0)  # [T, B, L, d_out]
                pick = task_ids.view(1, -1, *([1] * (x.dim() - 1))).expand(1, *per_task.shape[1:])
                outs.append(per_task.gather(0, pick).squeeze(0))
            else:
                outs.append(F.linear(F.linear(h, layer.lora_A), layer.head_B(e)))
    stacked = torch.stack(outs, dim=-2)  # [..., E, d_out]
    return layer.scaling * (gates.unsqueeze(-1) * stacked).sum(-2)
