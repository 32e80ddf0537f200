"""The interface every adapter scheme implements, and the pieces the routed ones share.

A scheme is a class of static methods over an AdapterLinear (PEFT's LoraVariant pattern): the layer owns the
parameters and the fused forward `y = W x + u Bcat^T`; the scheme creates the parameters and computes u."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from llava.adapters.balance import onehot


def cast(weight: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return weight if weight.dtype == like.dtype else weight.to(like.dtype)


class Scheme:
    name = ""
    task_heads = False  # B heads chosen by the sample's task (num_tasks > 1 allowed)
    token_routed = False  # a router mixes heads per token (with num_experts > 1)
    routers = False  # has routers at all (with num_experts > 1): per token, or per instance
    load_unit = "expert"  # what its router load counts
    plain = False  # one A and one B per layer whatever the sizes: plain LoRA

    @staticmethod
    def check(r: int, num_experts: int, num_tasks: int) -> None:
        """Raise ValueError for sizes the scheme cannot take."""

    @staticmethod
    def create(layer, d_in: int, d_out: int, router_kw: dict, kw: dict) -> None:
        """Create the layer's adapter parameters (lora_A, lora_B, routers) with dtype/device `kw`."""
        raise NotImplementedError

    @staticmethod
    def num_heads(layer) -> int:
        return 1

    @staticmethod
    def is_plain(layer) -> bool:
        """One A (r x d_in) and one B (d_out x r): a plain LoRA, what PEFT's format holds."""
        return False

    @staticmethod
    def head_inputs(layer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(u, balance statistic or None) with s * delta(x) = u Bcat^T."""
        raise NotImplementedError

    @staticmethod
    def delta_weight(layer, task: int | None) -> torch.Tensor:
        """s * B A as a dense d_out x d_in matrix when the adapter does not depend on the input, else ValueError."""
        raise ValueError(f"{layer.scheme} with {layer.num_experts} routed experts depends on the input; merging it into "
                         "W is not exact. Keep the adapter unmerged (or train with num_experts=1 and task heads).")


def scaled_projection(layer, x: torch.Tensor) -> torch.Tensor:
    """s * A x: the scale applied on the narrow [tokens, rows of A] tensor, not on the wide output."""
    return F.linear(layer.dropout(x), cast(layer.lora_A, x)) * layer.scaling


def expert_gates(layer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """[..., E] gates from the layer's own router or its MLP block's shared one."""
    block = layer.block_router
    if block is not None:
        return block.take()
    return layer.router.route(x, layer.state)


def task_onehot(layer, x: torch.Tensor) -> torch.Tensor:
    """[..., T] one-hot of each token's task, broadcastable over x's leading dimensions. Built once per batch and
    shared by every adapted linear (and every decoding step): two kernels each time it is built."""
    state = layer.state
    if state.task_ids is None:
        raise RuntimeError(f"this asymlora adapter has {layer.num_tasks} task heads: set the batch's task ids "
                           "(adapter_batch(model, task_ids=...) or --task)")
    packed = state.packed_for(x)
    key = (layer.num_tasks, x.dtype, x.device, x.dim(), x.shape[0], packed is not None)
    cached = state.task_onehots.get(key)
    if cached is not None and cached[0] is state.task_ids and cached[1] is state.packed:
        return cached[2]
    task_ids = state.task_ids.to(x.device)
    if packed is not None:
        result = onehot(packed.spread(task_ids), layer.num_tasks, x.dtype)  # [rows, seq, T]: each token its sample's
    else:
        if task_ids.numel() == 1 and x.shape[0] != 1:
            task_ids = task_ids.expand(x.shape[0])
        onehot_ids = onehot(task_ids, layer.num_tasks, x.dtype)  # [batch, T], broadcast over x's tokens
        result = onehot_ids.view(x.shape[0], *([1] * (x.dim() - 2)), layer.num_tasks)
    state.task_onehots[key] = (state.task_ids, state.packed, result)
    return result


def plain_delta(layer) -> torch.Tensor:
    return layer.scaling * (layer.lora_B.float() @ layer.lora_A.float())
