"""Token routers: gates over E experts, the Switch balance loss, and the per-MLP-block shared router."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llava.adapters.state import AttachAux, RoutingState


def compute_gates(logits: torch.Tensor, router: str, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (gates, probs): gates are what weight the heads, probs the full softmax (for the balance loss)."""
    probs = torch.softmax(logits.float(), dim=-1)
    if router == "dense" or top_k >= logits.shape[-1]:
        return probs, probs
    top_val, top_idx = logits.float().topk(top_k, dim=-1)
    gates = torch.zeros_like(probs).scatter(-1, top_idx, torch.softmax(top_val, dim=-1))
    return gates, probs


def balance_loss(probs: torch.Tensor, gates: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Switch Transformer load balancing: E * sum_e f_e * P_e over the counted tokens.

    f_e = share of tokens whose top expert is e (no gradient), P_e = mean router probability of e (gradient).
    Equals 1 at a perfectly uniform load, E when one expert takes everything.
    """
    num_experts = probs.shape[-1]
    probs = probs.reshape(-1, num_experts)
    top = F.one_hot(gates.detach().reshape(-1, num_experts).argmax(-1), num_experts).to(probs.dtype)
    # A weighted mean over counted tokens rather than boolean indexing: no device-to-host sync in the hot path.
    weight = probs.new_ones(probs.shape[0], 1) if mask is None else mask.reshape(-1, 1).to(probs.dtype)
    count = weight.sum().clamp_min(1.0)
    frac = (top * weight).sum(0) / count
    mean_prob = (probs * weight).sum(0) / count
    return num_experts * (frac * mean_prob).sum()


class Router(nn.Module):
    """Linear gate d_in -> E (no bias), default nn.Linear init."""

    def __init__(self, in_features: int, num_experts: int, router: str = "dense", top_k: int = 1,
                 dtype=None, device=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_experts, in_features, dtype=dtype, device=device))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.router = router
        self.top_k = top_k

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return compute_gates(F.linear(x, self.weight), self.router, self.top_k)

    def route(self, x: torch.Tensor, state: RoutingState):
        """Gates for x, plus the balance-loss value when training (None otherwise)."""
        gates, probs = self(x)
        aux = None
        if self.training:
            aux = balance_loss(probs, gates, state.mask_for(x))
            state.aux_values.append(aux.detach())
            state.record_load(gates)
        return gates.to(x.dtype), aux


def attach_aux(out: torch.Tensor, aux: torch.Tensor | None, state: RoutingState) -> torch.Tensor:
    if aux is None or not torch.is_grad_enabled() or state.aux_grad_scale == 0.0 or not aux.requires_grad:
        return out
    return AttachAux.apply(out, aux, state.aux_grad_scale)


class BlockRouter(Router):
    """One router per MLP block (router_scope="mlp_block"): fed the block input, shared by gate/up/down.

    Installed as a child of the MLP module with hooks: the pre-hook routes the block input and leaves the gates in
    `self.current` for the block's adapter layers; the post-hook attaches the balance loss to the block output.
    """

    def __init__(self, mlp: nn.Module, in_features: int, num_experts: int, state: RoutingState, **kw):
        super().__init__(in_features, num_experts, **kw)
        self.current: torch.Tensor | None = None
        self._aux: torch.Tensor | None = None
        self._state = [state]  # a list keeps the state out of the module tree
        self._handles = [mlp.register_forward_pre_hook(self._pre_hook), mlp.register_forward_hook(self._post_hook)]

    def _pre_hook(self, module, args):
        self.current, self._aux = self.route(args[0], self._state[0])

    def _post_hook(self, module, args, output):
        out = attach_aux(output, self._aux, self._state[0])
        self.current, self._aux = None, None
        return out

    def remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
