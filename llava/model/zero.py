"""DeepSpeed ZeRO-3 awareness for code that writes parameters after construction.

Under ZeRO-3, transformers builds models inside `deepspeed.zero.Init`, so parameters are partitioned (empty on each
rank). Writing into them needs `GatheredParameters(..., modifier_rank=0)`; without ZeRO-3 this is a no-op context.
"""

from __future__ import annotations

import contextlib

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
