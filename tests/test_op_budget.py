"""Kernels per adapter forward + backward and per decoding step, per scheme, held to a budget.

On a GPU the adapter layer's time is host overhead, not arithmetic (docs/gpu/h200-run2.md: the same time at
4096x4096 and 4096x11008), so the number of kernels it launches is what sets it; the CPU counts them exactly. Counted
with a TorchDispatchMode: every aten op that is not a view (a view launches no kernel). A change that adds kernels
to the hot path fails here and has to raise the budget on purpose; one that removes kernels should lower it.
"""

import collections

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from llava.adapters import AdapterConfig, adapter_batch, inject_adapters
from llava.adapters.layer import AdapterLinear
from llava.adapters.state import RoutingState
from llava.model.tiny import build_tiny


class KernelCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view and func.overloadpacket.__name__ not in ("detach", "lift_fresh", "_unsafe_view"):
            self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.ops.values())


SCHEMES = {  # rank 32, 3 experts (the paper's asymlora); mixlora: a pool of 32, r=8
    "lora": dict(scheme="lora", r=32),
    "asymlora": dict(scheme="asymlora", r=32, num_experts=3),
    "asymlora task x expert": dict(scheme="asymlora", r=32, num_experts=3, num_tasks=2),
    "moe_lora": dict(scheme="moe_lora", r=32, num_experts=3),
    "mixlora": dict(scheme="mixlora", r=8, num_experts=32),
}
# (forward, backward) kernels of one adapted linear in training: bf16 activations, fp32 adapter weights (cast to bf16
# in the forward, their gradients back in the backward); the frozen base alone is one mm each way. The routed
# schemes' forward includes the router and its balance-loss statistic.
LAYER_BUDGET = {"lora": (6, 9), "asymlora": (24, 24), "asymlora task x expert": (27, 26), "moe_lora": (24, 23),
                "mixlora": (35, 40)}
# kernels one cached decoding step of the tiny preset (fp32, 2 decoder layers, 7 adapted linears each, batch 2)
# adds to the frozen model's: lora 3 per linear (A x, the scale, the fused B-and-add); the task one-hot is built once
# per batch, not per linear and step
DECODE_BUDGET = {"lora": 42, "asymlora": 84, "asymlora task x expert": 98, "moe_lora": 84, "mixlora": 56}


def layer_kernels(settings: dict | None) -> tuple[int, int]:
    torch.manual_seed(0)
    base = torch.nn.Linear(64, 96, bias=False, dtype=torch.bfloat16).requires_grad_(False)
    state = RoutingState()
    layer = base if settings is None else AdapterLinear(base, alpha=64, state=state, **settings).train()
    x = torch.randn(2, 16, 64, dtype=torch.bfloat16, requires_grad=True)
    grad = torch.randn(2, 16, 96, dtype=torch.bfloat16)
    state.begin_batch(torch.tensor([0, 1]), torch.ones(2, 16), None)
    state.aux_grad_scale = 0.05
    with KernelCounter() as forward:
        y = layer(x)
    state.finish_forward()  # once per model forward, not per layer
    with KernelCounter() as backward:
        torch.autograd.backward(y, grad)
    return forward.total, backward.total


def test_the_frozen_base_alone():
    assert layer_kernels(None) == (1, 1)  # mm forward; mm for the input's gradient backward


@pytest.mark.parametrize("name", list(SCHEMES))
def test_adapter_forward_backward_kernels_within_budget(name):
    forward, backward = layer_kernels(SCHEMES[name])
    budget = LAYER_BUDGET[name]
    assert (forward, backward) <= budget and forward <= budget[0] and backward <= budget[1], (forward, backward)


def decode_step_kernels(settings: dict | None) -> int:
    model, _ = build_tiny(seed=0)
    if settings is not None:
        inject_adapters(model, AdapterConfig(**settings, task_names=["a", "b"]))
    model.eval()
    n = model.config.image_seq_length
    ids = torch.tensor([[1] + [model.config.image_token_index] * n + [60, 70, 80]] * 2)
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), adapter_batch(model, task_ids=torch.tensor([0, 1])) if settings else torch.no_grad():
        out = model(input_ids=ids, pixel_values=pixels, use_cache=True)
        step = out.logits[:, -1:].argmax(-1)
        with KernelCounter() as counter:
            model(input_ids=step, past_key_values=out.past_key_values, use_cache=True)
    return counter.total


def test_decode_step_kernels_within_budget():
    base = decode_step_kernels(None)
    extra = {name: decode_step_kernels(settings) - base for name, settings in SCHEMES.items()}
    print("decode step kernels: base", base, extra)
    assert all(extra[name] <= DECODE_BUDGET[name] for name in SCHEMES), (base, extra)
