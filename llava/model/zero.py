"""DeepSpeed ZeRO-3 awareness for code that builds models or writes parameters after construction.

Under ZeRO-3, transformers builds models inside `deepspeed.zero.Init`, so parameters are partitioned (empty on each
rank). Writing into them needs `GatheredParameters(..., modifier_rank=0)`; without ZeRO-3 this is a no-op context.
"""

from __future__ import annotations

import contextlib
import datetime
import os

import torch
from transformers.integrations import deepspeed as hf_deepspeed
from transformers.integrations import is_deepspeed_zero3_enabled


def gathered(params, modifier_rank: int | None = None):
    """Full parameters inside the context on every rank; with `modifier_rank`, that rank's writes are kept.
    A collective: every rank must enter it."""
    params = list(params)
    if not is_deepspeed_zero3_enabled() or not any(hasattr(p, "ds_id") for p in params):
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params, modifier_rank=modifier_rank)


def gathered_for_write(params):
    return gathered(params, modifier_rank=0)


@contextlib.contextmanager
def zero3_paused():
    """Construct modules as plain (unpartitioned) tensors even when ZeRO-3 is configured.

    Used for a meta-device skeleton whose children are replaced by already-loaded parts (transformers would
    otherwise initialise its meta weights through a gather and fail), and for small modules built from a seed on
    every rank; DeepSpeed partitions whatever is still whole when its engine starts.
    """
    ref = hf_deepspeed._hf_deepspeed_config_weak_ref  # the TrainingArguments' HfDeepSpeedConfig, if any
    active = ref() if ref is not None else None
    if active is None:
        yield
        return
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed.set_hf_deepspeed_config(active)


def numel(p: torch.Tensor) -> int:
    """Full size of a parameter, partitioned (ZeRO-3: `ds_numel`) or not."""
    return getattr(p, "ds_numel", p.numel())


def init_deepspeed_distributed(uses_deepspeed: bool, timeout_s: float = 1800) -> None:
    """Make DeepSpeed's communicator see every process before `zero.Init` runs.

    accelerate initialises torch.distributed but skips `deepspeed.init_distributed` on CPU, so DeepSpeed would see a
    world of one and refuse the batch size. gloo on CPU, nccl on CUDA; a no-op when single-process or done already.
    `timeout_s` bounds every collective (--ddp_timeout), as for the Trainer's own process group.
    """
    if not uses_deepspeed or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import deepspeed

    if not deepspeed.comm.is_initialized():
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo",
                                   timeout=datetime.timedelta(seconds=timeout_s))
