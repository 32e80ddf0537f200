"""Token routers: gates over E experts, their balance-loss statistics, and the per-MLP-block shared router."""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from llava.adapters.packed import PackedSamples, sample_sums
from llava.adapters.state import AttachAux, RoutingState

ROUTERS = ("dense", "topk", "switch")
ROUTER_INPUTS = ("token", "prompt")
ROUTER_INITS = ("kaiming", "zero")  # nn.Linear's default, or all-zero weights and bias (every gate uniform at start)  # what a router reads: each token, or its sample's prompt (one gate per sample)


def compute_gates(logits: torch.Tensor, router: str, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (gates, probs): gates are what weight the heads, probs the full softmax (for the balance loss).

    topk: the kept experts' softmax renormalised over them (Mixtral's gate; with k=1 the gate is exactly 1, so the LM
    loss gives the router no gradient). switch: the kept experts weighted by their probability in the full softmax
    (Switch Transformer's gate), which keeps that gradient at any k."""
    probs = torch.softmax(logits.float(), dim=-1)
    if router == "dense" or top_k >= logits.shape[-1]:
        return probs, probs
    top_val, top_idx = logits.float().topk(top_k, dim=-1)
    kept = probs.gather(-1, top_idx) if router == "switch" else torch.softmax(top_val, dim=-1)
    return torch.zeros_like(probs).scatter(-1, top_idx, kept), probs


def is_router_parameter(name: str) -> bool:
    """Routers (`.router.`, the MLP block's `adapter_router`) and mixlora's `router_cfs` all carry "router"."""
    return "router" in name


class Router(nn.Module):
    """Linear gate d_in -> E, nn.Linear's default init; a bias optional (the AsymLoRA authors' router has one)."""

    def __init__(self, in_features: int, num_experts: int, router: str = "dense", top_k: int = 1,
                 dtype=None, device=None, bias: bool = False, router_input: str = "token"):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_experts, in_features, dtype=dtype, device=device))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.bias = None
        if bias:
            bound = 1 / in_features**0.5
            self.bias = nn.Parameter(torch.empty(num_experts, dtype=dtype, device=device).uniform_(-bound, bound))
        self.router = router
        self.top_k = top_k
        self.router_input = router_input
        self.temperature = 1.0  # logits are divided by it: below 1 sharper gates, above 1 flatter
        self.noise = 0.0  # std of Gaussian noise added to the logits in training (exploration; none at inference)

    def configure(self, temperature: float = 1.0, noise: float = 0.0, init: str = "kaiming") -> None:
        """The study's router knobs (AdapterConfig.router_temperature, router_noise, router_init)."""
        self.temperature, self.noise = temperature, noise
        if init == "zero":
            with torch.no_grad():
                self.weight.zero_()
                if self.bias is not None:
                    self.bias.zero_()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Computed in the input's dtype (the weights may be kept in fp32)."""
        weight = self.weight if self.weight.dtype == x.dtype else self.weight.to(x.dtype)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        logits = F.linear(x, weight, bias)
        if self.training and self.noise > 0:  # drawn again identically when checkpointing recomputes (RNG restored)
            logits = logits + torch.randn_like(logits) * self.noise
        return logits / self.temperature if self.temperature != 1.0 else logits

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(gates, probs, logits). Routing goes through the module call, so ZeRO-3 gathers the weights (hooks)."""
        logits = self.logits(x)
        return (*compute_gates(logits, self.router, self.top_k), logits)

    def prompt_gates(self, x: torch.Tensor, state: RoutingState):
        """(gates, probs, logits) of router_input="prompt": one gate per sample from the mean of its prompt tokens, the
        same for every token of the sample (a task is a property of the instruction, not of each token; the prompt is
        all a model has at inference). logits: [batch, 1, E]; None when cached decoding (one new token per step)
        reuses the prompt's gates."""
        cached, logits, packed = state.sample_gates.get(id(self)), None, state.packed_for(x)
        if cached is not None and x.dim() == 3 and x.shape[1] == 1 and cached[0].shape[0] == x.shape[0]:
            gates, probs = cached
        else:
            gates, probs, logits = self(prompt_mean(x, state.mask_for(x, instance=True), packed))  # [samples, E]
            logits = logits.unsqueeze(1)
            if not self.training:
                state.sample_gates[id(self)] = (gates, probs)
        if packed is not None:  # each token takes its own sample's gates
            return packed.spread(gates), packed.spread(probs), logits
        shape = (*x.shape[:-1], gates.shape[-1])
        if x.dim() == 3:
            gates, probs = gates.unsqueeze(1), probs.unsqueeze(1)
        return gates.expand(shape), probs.expand(shape), logits

    def route(self, x: torch.Tensor, state: RoutingState):
        """Gates for x, plus (when training) the auxiliary losses' statistics to attach to the output (`attach_aux`):
        a list of (loss, statistic, gradient scale), else None."""
        prompt = self.router_input == "prompt"
        gates, probs, logits = self.prompt_gates(x, state) if prompt else self(x)
        aux = None
        if self.training:
            mask, packed = state.mask_for(x), state.packed_for(x)
            aux = [(state.balance, state.balance.record(id(self), probs, gates, mask, packed), state.aux_grad_scale)]
            if state.z_grad_scale and logits is not None:  # a prompt router: one logit vector per sample, no mask
                z_stat = state.z_loss.record(id(self), logits, *((None, None) if prompt else (mask, packed)))
                aux.append((state.z_loss, z_stat, state.z_grad_scale))
        state.record_load(gates, getattr(self, "load_layer", None))  # a no-op unless load or a trace is recorded
        return gates.to(x.dtype), aux


def prompt_mean(x: torch.Tensor, mask: torch.Tensor | None, packed: PackedSamples | None = None) -> torch.Tensor:
    """[samples, d]: the mean of each sample's tokens where `mask` (its prompt) is set, else of all its tokens."""
    if x.dim() == 2:
        return x.mean(0, keepdim=True)
    if mask is not None or packed is not None:
        m = (x.new_ones(x.shape[:2]) if mask is None else mask.to(x.dtype)).unsqueeze(-1)
        return sample_sums(x * m, packed) / sample_sums(m, packed).clamp_min(1)
    return x.mean(1)


def attach_aux(out: torch.Tensor, aux: list | None, key: int) -> torch.Tensor:
    """Hook router `key`'s auxiliary-loss statistics onto `out` so backward delivers their gradients (AttachAux)."""
    if aux is None or not torch.is_grad_enabled():
        return out
    for loss, stat, scale in aux:
        if scale != 0.0 and stat.requires_grad:
            out = AttachAux.apply(out, stat, loss, key, scale)
    return out


class BlockRouter(Router):
    """One router per MLP block (router_scope="mlp_block"): fed the block input, shared by gate/up/down.

    Installed as a child of the MLP module with a pre-hook that routes the block input; the block's adapter layers
    then `take()` the gates, and the last of them also takes the balance-loss statistic and attaches it to its own
    output. Nothing stays referenced once the block's last adapter has run: a post-hook would be skipped by the
    early-stopping recomputation of non-reentrant activation checkpointing, and the gates it left behind would hold
    each layer's recomputed graph alive through the whole backward.
    """

    def __init__(self, mlp: nn.Module, in_features: int, num_experts: int, state: RoutingState, **kw):
        super().__init__(in_features, num_experts, **kw)
        self.consumers = 0  # adapter layers of the block that read the gates (AdapterLinear registers itself)
        self.current: torch.Tensor | None = None
        self._aux: torch.Tensor | None = None
        self._taken = 0
        self._state = [state]  # a list keeps the state out of the module tree
        self._handles = [mlp.register_forward_pre_hook(self._pre_hook)]

    @property
    def state(self) -> RoutingState:
        return self._state[0]

    def _pre_hook(self, module, args):
        self.current, self._aux = self.route(args[0], self.state)
        self._taken = 0

    def take(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The block's gates, and for the block's last adapter layer the balance statistic to attach (else None)."""
        if self.current is None:
            raise RuntimeError("mlp_block router has no gates: the MLP's pre-hook did not run")
        gates, aux = self.current, None
        self._taken += 1
        if self._taken >= self.consumers:
            aux = self._aux
            self.current, self._aux = None, None
        return gates, aux

    def remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def label_router_layers(model) -> None:
    """Tell every router which transformer layer it sits in (`.layers.N.` in its name), so the router load can be
    reported per layer as well as in total."""
    for name, module in model.named_modules():
        if isinstance(module, Router):
            match = re.search(r"\.layers\.(\d+)\.", f".{name}.")
            module.load_layer = int(match.group(1)) if match else None
