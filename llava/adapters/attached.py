"""What `inject_adapters` attaches to a model, behind one typed accessor.

The config and the routing state ride on the model (transformers and DeepSpeed pass the model object around, not a
wrapper of ours); everything reads them through `adapters_of(model)` rather than loose attributes."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from llava.adapters.config import AdapterConfig
from llava.adapters.state import RoutingState

ATTRIBUTE = "llava_adapters"


@dataclass
class Attached:
    config: AdapterConfig
    state: RoutingState


def adapters_of(model: nn.Module) -> Attached | None:
    """The model's adapters (config and routing state), or None when it has none."""
    return getattr(model, ATTRIBUTE, None)  # getattr: a DeepSpeed engine forwards it to its module


def adapter_config(model: nn.Module) -> AdapterConfig | None:
    attached = adapters_of(model)
    return attached.config if attached is not None else None


def routing_state(model: nn.Module) -> RoutingState | None:
    attached = adapters_of(model)
    return attached.state if attached is not None else None


def attach(model: nn.Module, config: AdapterConfig, state: RoutingState) -> None:
    setattr(model, ATTRIBUTE, Attached(config, state))


def detach(model: nn.Module) -> None:
    if ATTRIBUTE in model.__dict__:
        delattr(model, ATTRIBUTE)


def get_state(model) -> RoutingState:
    state = routing_state(model)
    if state is None:
        raise ValueError("model has no adapters: call inject_adapters(model, config) first")
    return state


def set_adapter_batch(model, task_ids=None, token_mask=None, labels=None) -> None:
    """Set the task ids ([batch] long tensor, or an int for the whole batch), token mask and (a forward with a loss)
    labels for the next forward."""
    if isinstance(task_ids, int):
        task_ids = torch.tensor([task_ids])
    get_state(model).begin_batch(task_ids, token_mask, labels)


@contextlib.contextmanager
def adapter_batch(model, task_ids=None, token_mask=None, labels=None):
    """`with adapter_batch(model, task_ids=...): model(...)` routes the batch to its task heads."""
    state = get_state(model)
    previous = (state.task_ids, state.token_mask, state.instance_mask)
    set_adapter_batch(model, task_ids, token_mask, labels)
    try:
        yield state
    finally:
        state.task_ids, state.token_mask, state.instance_mask = previous
