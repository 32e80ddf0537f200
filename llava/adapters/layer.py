"""AdapterLinear: a frozen nn.Linear plus one adapter of the family, in fused form.

    y = W x + s * Bcat u,     z = A x (once),     u = (gates ⊗ z) flattened

lora:      one head, u = z.
asymlora:  shared A (r x d_in); H = T*E heads in Bcat (d_out x H r); gates over heads = onehot(task) ⊗ g(x).
           Heads of other tasks see u = 0, so they get exactly zero gradient from this batch.
moe_lora:  Acat (E r x d_in) and Bcat (d_out x E r); u = g_e * z_e per expert.
mixlora:   factor pools a (E x d_in), b (d_out x E); per instance r factors of each are picked and paired through a
           selection matrix S [batch, E, E] (u = (A x) S), weighted by router probabilities so the routers learn.
Two GEMMs per adapter whatever the number of heads; no [tokens, E, d_out] tensor; no loop over experts.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from llava.adapters.balance import onehot
from llava.adapters.routing import Router, attach_aux
from llava.adapters.state import RoutingState


def _cast(weight: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return weight if weight.dtype == like.dtype else weight.to(like.dtype)


class AdapterLinear(nn.Module):
    def __init__(self, base: nn.Linear, scheme: str, r: int, alpha: float, dropout: float = 0.0,
                 num_experts: int = 1, num_tasks: int = 1, router: str = "dense", top_k: int = 1,
                 state: RoutingState | None = None, block_router=None, dtype: torch.dtype | None = torch.float32,
                 router_bias: bool = False):
        super().__init__()
        self.base = base
        self.scheme = scheme
        self.r = r
        self.scaling = alpha / r
        self.num_experts = num_experts
        self.num_tasks = num_tasks if scheme == "asymlora" else 1
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self._state = [state if state is not None else RoutingState()]
        self._block_router = [block_router]  # shared router lives on the MLP module, not in this subtree
        if block_router is not None:
            block_router.consumers += 1
        d_in, d_out = base.in_features, base.out_features
        # Adapter weights (and so their optimizer updates) in fp32 whatever the base (bf16, 4/8-bit), as PEFT;
        # they compute in the input's dtype. dtype=None keeps them in the base's (floating) dtype.
        kw = dict(dtype=dtype or base.weight.dtype, device=base.weight.device)
        if scheme == "mixlora":
            self.lora_A = nn.Parameter(torch.empty(num_experts, d_in, **kw))  # factor pool a_1..a_E
            self.lora_B = nn.Parameter(torch.zeros(d_out, num_experts, **kw))  # factor pool b_1..b_E
            self.router_a = Router(d_in, num_experts, **kw)
            self.router_b = Router(d_in, num_experts, **kw)
            self.router_cfs = nn.Linear(num_experts, num_experts, bias=False, **kw)  # chosen a's -> b logits
        else:
            a_rows = r * num_experts if scheme == "moe_lora" else r
            self.lora_A = nn.Parameter(torch.empty(a_rows, d_in, **kw))
            self.lora_B = nn.Parameter(torch.zeros(d_out, self.num_heads * r, **kw))
            if self.routed and block_router is None:
                self.router = Router(d_in, num_experts, router=router, top_k=top_k, bias=router_bias, **kw)
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # fan-in d_in: every expert's A gets LoRA's init

    @property
    def num_heads(self) -> int:
        """B heads: T*E for asymlora, E for moe_lora, 1 for lora."""
        if self.scheme == "asymlora":
            return self.num_tasks * self.num_experts
        return self.num_experts if self.scheme == "moe_lora" else 1

    @property
    def routed(self) -> bool:
        return self.scheme in ("asymlora", "moe_lora") and self.num_experts > 1

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    # --- gates -------------------------------------------------------------------------------------------------
    def _expert_gates(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        block = self._block_router[0]
        if block is not None:
            return block.take()
        return self.router.route(x, self._state[0])

    def _task_onehot(self, x: torch.Tensor) -> torch.Tensor:
        task_ids = self._state[0].task_ids
        if task_ids is None:
            raise RuntimeError(f"this asymlora adapter has {self.num_tasks} task heads: set the batch's task ids "
                               "(adapter_batch(model, task_ids=...) or --task)")
        task_ids = task_ids.to(x.device)
        if task_ids.numel() == 1 and x.shape[0] != 1:
            task_ids = task_ids.expand(x.shape[0])
        return onehot(task_ids, self.num_tasks, x.dtype)

    # --- forward -----------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, aux = self.head_inputs(x)
        y = self.base(x)
        # y + u Bcat^T as one GEMM that accumulates into y (no separate pass over the [tokens, d_out] output)
        out = torch.addmm(y.reshape(-1, y.shape[-1]), u.reshape(-1, u.shape[-1]), _cast(self.lora_B, u).t()).view_as(y)
        router = self._block_router[0] if self._block_router[0] is not None else getattr(self, "router", None)
        return attach_aux(out, aux, self._state[0], id(router))

    def adapter_delta(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(s * delta(x), balance loss or None): everything the adapter adds to the frozen layer."""
        u, aux = self.head_inputs(x)
        return F.linear(u, _cast(self.lora_B, u)), aux

    def head_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """u such that s * delta(x) = u Bcat^T: the gated, scaled A x for every head (flattened), and the balance
        loss. The scale s is applied here, on the narrow [tokens, heads * r] tensor, not on the wide output."""
        if self.scheme == "mixlora":
            return self._mixlora_inputs(x), None
        z = F.linear(self.dropout(x), _cast(self.lora_A, x)) * self.scaling
        aux = None
        if self.scheme == "asymlora" and self.num_heads > 1:
            if self.num_experts > 1:
                gates, aux = self._expert_gates(x)  # [..., E]
            else:
                gates = x.new_ones(*x.shape[:-1], 1)
            if self.num_tasks > 1:  # heads ordered task-major: head = t * E + e
                onehot = self._task_onehot(x).view(x.shape[0], *([1] * (x.dim() - 2)), self.num_tasks, 1)
                gates = (onehot * gates.unsqueeze(-2)).flatten(-2)
            z = (gates.unsqueeze(-1) * z.unsqueeze(-2)).flatten(-2)
        elif self.scheme == "moe_lora" and self.num_experts > 1:
            gates, aux = self._expert_gates(x)
            z = (gates.unsqueeze(-1) * z.unflatten(-1, (self.num_experts, self.r))).flatten(-2)
        return z, aux

    def _mixlora_select(self, x: torch.Tensor) -> torch.Tensor:
        """Per-instance selection matrix S [batch, E, E] from the mean input over the sample's prompt tokens."""
        state = self._state[0]
        mask = state.mask_for(x, instance=True)
        cached = state.instance_selection.get(id(self))
        if cached is not None and x.dim() == 3 and x.shape[1] == 1 and cached.shape[0] == x.shape[0]:
            return cached  # cached decoding: one new token per step keeps the prompt's selection
        if x.dim() == 2:
            inst = x.mean(0, keepdim=True)
        elif mask is not None:
            m = mask.unsqueeze(-1).to(x.dtype)
            inst = (x * m).sum(1) / m.sum(1).clamp_min(1)
        else:
            inst = x.mean(1)
        r = self.r
        logits_a = self.router_a.logits(inst).float()
        top_a, idx_a = logits_a.topk(r, dim=-1)
        w_a = torch.softmax(top_a, -1) * r  # mean weight 1; gradient reaches router_a
        chosen_a = torch.zeros_like(logits_a).scatter(-1, idx_a, w_a / r)
        cfs = F.linear(chosen_a, self.router_cfs.weight.float())
        logits_b = self.router_b.logits(inst).float() + cfs
        top_b, idx_b = logits_b.topk(r, dim=-1)
        w_b = torch.softmax(top_b, -1) * r
        batch = torch.arange(inst.shape[0], device=x.device).unsqueeze(-1).expand_as(idx_a)
        select = torch.zeros(inst.shape[0], self.num_experts, self.num_experts, device=x.device, dtype=torch.float32)
        select = select.index_put((batch, idx_a, idx_b), w_a * w_b)  # a_i pairs with b_i, i = 1..r
        select = select.to(x.dtype)
        if self.training:
            # which a-factors each task's instances pick, in total and for this layer
            state.record_load(chosen_a.unsqueeze(1), getattr(self.router_a, "load_layer", None))
        else:
            state.instance_selection[id(self)] = select
        return select

    def _mixlora_inputs(self, x: torch.Tensor) -> torch.Tensor:
        select = self._mixlora_select(x)
        z = F.linear(self.dropout(x), _cast(self.lora_A, x)) * self.scaling  # [..., E]: projections on every a
        if x.dim() == 2:
            return z @ select[0]
        return torch.bmm(z, select)  # pick and pair factors per instance

    # --- views and merging -------------------------------------------------------------------------------------
    def head_B(self, head: int) -> torch.Tensor:
        """B matrix (d_out x r) of one head."""
        return self.lora_B[:, head * self.r:(head + 1) * self.r]

    def delta_weight(self, task: int | None = None) -> torch.Tensor:
        """s * B A (fp32) as a dense d_out x d_in matrix, when the adapter is input-independent (else ValueError)."""
        if self.scheme == "lora" or (self.scheme == "asymlora" and self.num_heads == 1):
            return self.scaling * (self.lora_B.float() @ self.lora_A.float())
        if self.scheme == "asymlora" and self.num_experts == 1:
            if task is None:
                raise ValueError(f"asymlora with {self.num_tasks} task heads merges per task: pass task=")
            return self.scaling * (self.head_B(task).float() @ self.lora_A.float())
        raise ValueError(f"{self.scheme} with {self.num_experts} routed experts depends on the input; merging it into "
                         "W is not exact. Keep the adapter unmerged (or train with num_experts=1 and task heads).")

    def extra_repr(self) -> str:
        return f"scheme={self.scheme}, r={self.r}, heads={self.num_heads if self.scheme != 'mixlora' else 'pool'}"
