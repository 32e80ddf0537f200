"""mixlora (Shen et al. 2024): factor pools a_1..a_E (E x d_in) and b_1..b_E (d_out x E); per instance, routers on
the mean of its prompt tokens pick r factors of each pool (Independent, then Conditional Factor Selection) and pair
them through a selection matrix S [batch, E, E]: u = (s A x) S, weighted by the router probabilities so the routers
learn."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llava.adapters.routing import Router, prompt_mean
from llava.adapters.schemes.base import Scheme, scaled_projection


class MixLoRA(Scheme):
    name = "mixlora"
    load_unit = "factor"
    routers = True

    @staticmethod
    def check(r: int, num_experts: int, num_tasks: int) -> None:
        if num_tasks != 1:
            raise ValueError("num_tasks > 1 is an asymlora option; mixlora routes on the input only")
        if num_experts < r:
            raise ValueError(f"mixlora selects r={r} factors from a pool of num_experts={num_experts}: "
                             "the pool must be at least r")

    @staticmethod
    def create(layer, d_in: int, d_out: int, router_kw: dict, kw: dict) -> None:
        e = layer.num_experts
        layer.lora_A = nn.Parameter(torch.empty(e, d_in, **kw))  # factor pool a_1..a_E
        layer.lora_B = nn.Parameter(torch.zeros(d_out, e, **kw))  # factor pool b_1..b_E
        layer.router_a = Router(d_in, e, **kw)
        layer.router_b = Router(d_in, e, **kw)
        layer.router_cfs = nn.Linear(e, e, bias=False, **kw)  # chosen a's -> b logits

    @staticmethod
    def num_heads(layer) -> int:
        return 1  # one pool, read through the selection

    @staticmethod
    def head_inputs(layer, x):
        select = MixLoRA.selection(layer, x)
        z = scaled_projection(layer, x)  # [..., E]: projections on every a
        if x.dim() == 2:
            return z @ select[0], None
        packed = layer.state.packed_for(x)
        if packed is not None:  # several instances in a row: each token takes its own instance's selection
            return (z.unsqueeze(-2) @ packed.spread(select)).squeeze(-2), None
        return torch.bmm(z, select), None  # pick and pair factors per instance

    @staticmethod
    def selection(layer, x: torch.Tensor) -> torch.Tensor:
        """Per-instance selection matrix S [samples, E, E] from the mean input over the sample's prompt tokens."""
        state = layer.state
        cached = state.instance_selection.get(id(layer))
        if cached is not None and x.dim() == 3 and x.shape[1] == 1 and cached.shape[0] == x.shape[0]:
            return cached  # cached decoding: one new token per step keeps the prompt's selection
        inst = prompt_mean(x, state.mask_for(x, instance=True), state.packed_for(x))
        r, e = layer.r, layer.num_experts
        logits_a = layer.router_a.logits(inst).float()
        top_a, idx_a = logits_a.topk(r, dim=-1)
        w_a = torch.softmax(top_a, -1) * r  # mean weight 1; gradient reaches router_a
        chosen_a = torch.zeros_like(logits_a).scatter(-1, idx_a, w_a / r)
        cfs = F.linear(chosen_a, layer.router_cfs.weight.float())
        logits_b = layer.router_b.logits(inst).float() + cfs
        top_b, idx_b = logits_b.topk(r, dim=-1)
        w_b = torch.softmax(top_b, -1) * r
        batch = torch.arange(inst.shape[0], device=x.device).unsqueeze(-1).expand_as(idx_a)
        select = torch.zeros(inst.shape[0], e, e, device=x.device, dtype=torch.float32)
        select = select.index_put((batch, idx_a, idx_b), w_a * w_b).to(x.dtype)  # a_i pairs with b_i, i = 1..r
        if layer.training:
            # which a-factors each task's instances pick, in total and for this layer
            state.record_load(chosen_a.unsqueeze(1), getattr(layer.router_a, "load_layer", None))
        else:
            state.instance_selection[id(layer)] = select
        return select

