"""The optimizer state of a DeepSpeed run, whole and keyed by parameter name, so a run resumes on any world size.

DeepSpeed ZeRO keeps the fp32 master weights and Adam moments partitioned over the data-parallel ranks; its own
checkpoint writes one file per rank, refuses them on another world size, and under ZeRO-1/2 also writes the whole
frozen base. Only the adapters, routers and projector train here, so their state is small: a DeepSpeed checkpoint
holds it in FILE (safetensors) and nothing else of the optimizer. Without DeepSpeed the Trainer's optimizer.pt is
already whole.
"""

from __future__ import annotations

import glob
import json
import os

import torch
from safetensors import safe_open

from llava.adapters.io import atomic_save_file
from llava.checkpoint import OPTIMIZER_STATE as FILE
from llava.model.zero import gathered_for_write

MOMENTS = ("exp_avg", "exp_avg_sq")


class WorldSizeError(RuntimeError):
    pass


def saved_world_size(checkpoint: str) -> int | None:
    """Data-parallel processes that wrote a DeepSpeed checkpoint (one optimizer partition each), None otherwise."""
    path = os.path.join(checkpoint, FILE)
    if os.path.exists(path):
        with safe_open(path, framework="pt") as f:
            return int(f.metadata()["world_size"])
    partitions = glob.glob(os.path.join(checkpoint, "global_step*", "*_optim_states.pt"))
    return len(partitions) or None


def _trainable(model) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def _base_optimizer(engine):
    """The torch optimizer inside DeepSpeed's ZeRO wrapper: its state holds Adam's step count."""
    return engine.optimizer.optimizer


def save(engine, model, checkpoint: str, world_size: int, should_write: bool) -> None:
    """Gather every trainable tensor's fp32 master weight and Adam moments and write them whole. A collective:
    every rank calls it, in the same parameter order."""
    from deepspeed.utils import safe_get_full_fp32_param, safe_get_full_optimizer_state

    _link_moments(engine)
    tensors = {}
    for name, p in _trainable(model).items():
        shape = getattr(p, "ds_shape", p.shape)  # ZeRO-3: the full shape of a partitioned parameter
        tensors[f"weight/{name}"] = safe_get_full_fp32_param(p).detach().cpu().reshape(shape)
        for key in MOMENTS:
            tensors[f"{key}/{name}"] = safe_get_full_optimizer_state(p, key).detach().cpu().reshape(shape)
    steps = {float(s["step"]) for s in _base_optimizer(engine).state.values() if "step" in s}
    if len(steps) != 1:
        raise RuntimeError(f"expected one Adam step count over the parameter groups, found {sorted(steps)}")
    if should_write:
        atomic_save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(checkpoint, FILE),
                         metadata={"world_size": str(world_size), "step": json.dumps(steps.pop()),
                                   "loss_scale": json.dumps(_loss_scale(engine)),
                                   "format": "llava-asymlora optimizer state v1: weight/, exp_avg/, exp_avg_sq/"})


def _loss_scale(engine) -> dict:
    """fp16's dynamic loss scale (its current scale and overflow counters), so a resumed run does not start again
    from the initial scale and skip steps the uninterrupted run took; static (1.0) under bf16 and fp32."""
    scaler = getattr(engine.optimizer, "loss_scaler", None)
    return {k: v for k, v in vars(scaler).items() if type(v) in (int, float, bool)} if scaler is not None else {}


def load(engine, model, checkpoint: str) -> int:
    """Write the saved weights into the model and into DeepSpeed's fp32 masters and Adam moments (whatever the
    partitioning now); returns the Adam step. A collective under ZeRO-3: every rank calls it."""
    path = os.path.join(checkpoint, FILE)
    if not os.path.exists(path):
        raise WorldSizeError(f"{checkpoint} has no {FILE}")
    with safe_open(path, framework="pt") as f:
        step = json.loads(f.metadata()["step"])
        loss_scale = json.loads(f.metadata().get("loss_scale", "{}"))
        saved = {k: f.get_tensor(k) for k in f.keys()}
    params = _trainable(model)
    missing = [n for n in params if f"weight/{n}" not in saved]
    if missing:
        raise WorldSizeError(f"{path}: no saved state for {len(missing)} trainable tensors (first: {missing[0]})")
    _link_moments(engine, create=True)
    with gathered_for_write(params.values()), torch.no_grad():
        for name, p in params.items():
            p.copy_(saved[f"weight/{name}"].to(p.dtype))
    for name, p in params.items():
        _set_full(p, saved[f"weight/{name}"], None)
        for key in MOMENTS:
            _set_full(p, saved[f"{key}/{name}"], key)
    for state in _base_optimizer(engine).state.values():
        state["step"] = torch.tensor(float(step)) if torch.is_tensor(state.get("step")) else step
    scaler = getattr(engine.optimizer, "loss_scaler", None)
    for key, value in loss_scale.items():
        if scaler is not None and hasattr(scaler, key):
            setattr(scaler, key, value)
    return int(step)


def _set_full(param, value: torch.Tensor, key: str | None) -> None:
    """Write a whole fp32 master weight (key None) or Adam moment into this rank's share of it. ZeRO-3 pads a
    parameter to equal partitions, which DeepSpeed's full-tensor setter does not handle: cut this rank's
    partition here and set it with the local setter."""
    from deepspeed.utils import (
        safe_set_full_fp32_param,
        safe_set_full_optimizer_state,
        safe_set_local_fp32_param,
        safe_set_local_optimizer_state,
    )

    value = value.float()
    if not hasattr(param, "ds_id"):
        safe_set_full_fp32_param(param, value) if key is None else safe_set_full_optimizer_state(param, value, key)
        return
    n = param.ds_tensor.numel()
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0  # data parallel only
    local = torch.zeros(n, dtype=torch.float32)
    chunk = value.flatten()[rank * n:(rank + 1) * n]
    local[:chunk.numel()] = chunk
    safe_set_local_fp32_param(param, local) if key is None else safe_set_local_optimizer_state(param, local, key)


def _link_moments(engine, create: bool = False) -> None:
    """DeepSpeed creates Adam's state at the first step; ZeRO-1/2 then link each parameter to its slice of it once,
    right after the first parameter group's step (DeepSpeed 0.19), so later groups (the projector's) stay unlinked:
    link again. `create`: before any step (a resume), create the state (zeros) first."""
    inner, base = engine.optimizer, _base_optimizer(engine)
    if create:
        # torch's Adam/AdamW count steps in a tensor (AdamW subclasses Adam only from torch 2.8); DeepSpeed's CPU
        # Adam in an int
        torch_adam = isinstance(base, (torch.optim.Adam, torch.optim.AdamW))
        flats = getattr(inner, "fp32_partitioned_groups_flat", None) or inner.single_partition_of_fp32_groups
        for p in flats:  # ZeRO-3 / ZeRO-1,2: this rank's fp32 partitions, the keys of the torch optimizer's state
            if not base.state[p]:
                base.state[p] = {"step": torch.tensor(0.0) if torch_adam else 0,
                                 "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
    if hasattr(inner, "_lazy_init_hp_params_optimizer_state"):  # ZeRO-3 reads the state directly
        inner._hp_optimizer_states_linked = False
        inner._lazy_init_hp_params_optimizer_state()
