"""What the Trainer must know about the DeepSpeed JSON a user passes.

Our configs leave optimizer and scheduler to the Trainer, so the projector keeps its own learning rate and the
schedule is the one on the command line (docs/deepspeed.md). ZeRO-Offload of the optimizer state needs an optimizer
that steps on the CPU: DeepSpeed's CPU Adam, built here with the Trainer's parameter groups and hyper-parameters.
"""

from __future__ import annotations

import json


def _config(args) -> dict:
    ds = args.deepspeed
    if not ds:
        return {}
    if isinstance(ds, dict):
        return ds
    with open(ds) as f:
        return json.load(f)


def offloads_optimizer(args) -> bool:
    zero = _config(args).get("zero_optimization", {})
    return zero.get("offload_optimizer", {}).get("device", "none") not in ("none", None)


def cpu_adam_class():
    """DeepSpeedCPUAdam with the signature of torch's AdamW (decoupled weight decay), for the Trainer's kwargs."""
    from deepspeed.ops.adam import DeepSpeedCPUAdam

    def make(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, **_ignored):
        return DeepSpeedCPUAdam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, adamw_mode=True)

    return make
