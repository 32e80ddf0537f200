"""What the routers decided for each generated token: recorded during generation for the serving routing view.

While `state.trace` is set, every token router adds its gates at the last position of each forward. In cached
decoding each forward yields exactly one new token per row, so forward s holds the routing that produced new token
s (the first one: the prompt's last position). The routers of one transformer layer (one per MLP block, or one per
adapted linear layer) are averaged, so a layer's gate mass sums to 1 per token.
"""

from __future__ import annotations

import contextlib
from collections import Counter

import torch

from llava.adapters.attached import routing_state
from llava.adapters.routing import Router, label_router_layers


class RoutingTrace:
    def __init__(self, routers_per_layer: dict[int, int]):
        self.routers_per_layer = dict(routers_per_layer)
        self._gates: dict[int, list[torch.Tensor]] = {}  # layer -> [batch, E] per router call, in call order

    def add(self, layer: int | None, gates: torch.Tensor) -> None:
        if layer is None or gates.dim() != 3:
            return
        self._gates.setdefault(layer, []).append(gates[:, -1].detach().float())

    def per_token(self, steps: int) -> torch.Tensor | None:
        """[batch, steps, layers, E] gate mass of the first `steps` forwards; None if no router ran."""
        if not self._gates:
            return None
        layers = []
        for layer in sorted(self._gates):
            calls = torch.stack(self._gates[layer]).cpu()  # [forwards * routers, batch, E]
            routers = self.routers_per_layer.get(layer, 1)
            forwards = calls.shape[0] // routers
            per_forward = calls[: forwards * routers].view(forwards, routers, *calls.shape[1:]).mean(1)
            layers.append(per_forward[:steps])
        return torch.stack(layers, dim=2).transpose(0, 1)  # [batch, steps, layers, E]


def token_routers(model) -> dict[int, int]:
    """Token routers per transformer layer (mixlora's instance routers excluded: they pick factors per sample)."""
    label_router_layers(model)
    return dict(Counter(m.load_layer for name, m in model.named_modules()
                        if isinstance(m, Router) and m.load_layer is not None
                        and not name.rsplit(".", 1)[-1].startswith("router_")))


@contextlib.contextmanager
def trace_routing(model):
    """`with trace_routing(model) as trace: model.generate(...)`; then trace.per_token(n)."""
    state = routing_state(model)
    previous, state.trace = state.trace, RoutingTrace(token_routers(model))
    try:
        yield state.trace
    finally:
        state.trace = previous
