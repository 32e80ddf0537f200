"""AdapterLinear: a frozen nn.Linear plus one adapter of the family, in fused form.

    y = W x + s * Bcat u,     z = A x (once),     u = (gates ⊗ z) flattened

The layer owns the parameters and this one code path; what u is, per scheme, lives in `schemes/` (one file each).
Two GEMMs per adapter whatever the number of heads; no [tokens, E, d_out] tensor; no loop over experts.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from llava.adapters.routing import attach_aux
from llava.adapters.schemes import scheme as scheme_class
from llava.adapters.schemes.base import cast
from llava.adapters.state import RoutingState


class AdapterLinear(nn.Module):
    def __init__(self, base: nn.Linear, scheme: str, r: int, alpha: float, dropout: float = 0.0,
                 num_experts: int = 1, num_tasks: int = 1, router: str = "dense", top_k: int = 1,
                 state: RoutingState | None = None, block_router=None, dtype: torch.dtype | None = torch.float32,
                 router_bias: bool = False, router_input: str = "token"):
        super().__init__()
        self.base = base
        self.scheme = scheme
        self.variant = scheme_class(scheme)
        self.r = r
        self.scaling = alpha / r
        self.num_experts = num_experts
        self.num_tasks = num_tasks if self.variant.task_heads else 1
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self._state = [state if state is not None else RoutingState()]  # a list: not a submodule
        self._block_router = [block_router]  # shared router lives on the MLP module, not in this subtree
        if block_router is not None:
            block_router.consumers += 1
        # Adapter weights (and so their optimizer updates) in fp32 whatever the base (bf16, 4/8-bit), as PEFT;
        # they compute in the input's dtype. dtype=None keeps them in the base's (floating) dtype.
        kw = dict(dtype=dtype or base.weight.dtype, device=base.weight.device)
        self.variant.create(self, base.in_features, base.out_features,
                            dict(router=router, top_k=top_k, bias=router_bias, router_input=router_input), kw)
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # fan-in d_in: every expert's A gets LoRA's init
        # the router whose balance statistic this layer's output carries (fixed once built: not looked up per call)
        self._aux_key = id(block_router if block_router is not None else getattr(self, "router", None))

    @property
    def state(self) -> RoutingState:
        return self._state[0]

    @property
    def block_router(self):
        return self._block_router[0]

    @property
    def num_heads(self) -> int:
        """B heads: T*E for asymlora, E for moe_lora, 1 for lora (and mixlora's one pool)."""
        return self.variant.num_heads(self)

    @property
    def is_plain(self) -> bool:
        """One A and one B: lora, or asymlora with a single head."""
        return self.variant.is_plain(self)

    @property
    def routed(self) -> bool:
        return self.variant.token_routed and self.num_experts > 1

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, aux = self.head_inputs(x)
        y = self.base(x)
        # y + u Bcat^T as one GEMM that accumulates into y (no separate pass over the [tokens, d_out] output). Out of
        # place: in place (y.addmm_) adds backward kernels in autograd (counted as tests/test_op_budget.py counts)
        out = torch.addmm(y.reshape(-1, y.shape[-1]), u.reshape(-1, u.shape[-1]), cast(self.lora_B, u).t()).view_as(y)
        return attach_aux(out, aux, self._aux_key)

    def adapter_delta(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(s * delta(x), balance loss or None): everything the adapter adds to the frozen layer."""
        u, aux = self.head_inputs(x)
        return F.linear(u, cast(self.lora_B, u)), aux

    def head_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """u such that s * delta(x) = u Bcat^T: the gated, scaled A x for every head (flattened), and the balance
        loss statistic. The scale s is applied on the narrow [tokens, heads * r] tensor, not on the wide output."""
        return self.variant.head_inputs(self, x)

    def head_B(self, head: int) -> torch.Tensor:
        """B matrix (d_out x r) of one head."""
        return self.lora_B[:, head * self.r:(head + 1) * self.r]

    def delta_weight(self, task: int | None = None) -> torch.Tensor:
        """s * B A (fp32) as a dense d_out x d_in matrix, when the adapter is input-independent (else ValueError)."""
        return self.variant.delta_weight(self, task)

    def extra_repr(self) -> str:
        return f"scheme={self.scheme}, r={self.r}, heads={self.num_heads if self.scheme != 'mixlora' else 'pool'}"
