"""Several training runs in one launched job (tests/test_scheme_matrix.py, tests/helpers/recipe_runs.py's
finetune_together).

Each run's arguments are the scripts' own (their DRY_RUN command line); one process start-up (torch, transformers,
DeepSpeed, the process group) serves every run of one process count, which is what keeps the multi-process tests
inside the suite's time. Rank 0 writes PLAN.json.modes: what each run trained under, as transformers saw it
(DeepSpeed on, ZeRO-3 on), so a test can tell a mode that leaked from one run into the next.
Usage: python -m torch.distributed.run ... -m tests.scripts.train_plan PLAN.json ([{"name": ..., "argv": [...]}, ...])
"""

import json
import sys

import torch
from transformers.integrations import is_deepspeed_zero3_enabled

from llava import process_gc
from llava.train.train import train


def optimizer_kind(trainer) -> dict:
    """The optimizer that stepped: DeepSpeed's engine holds the one it was given (under ZeRO-Offload, accelerate's
    CPU Adam rebuilt from the Trainer's), the Trainer's wrapper otherwise; whether its weight decay is decoupled."""
    optimizer = trainer.model_wrapped.basic_optimizer if trainer.is_deepspeed_enabled else trainer.optimizer.optimizer
    decoupled = optimizer.adam_w_mode if hasattr(optimizer, "adam_w_mode") else isinstance(optimizer, torch.optim.AdamW)
    return {"optimizer": type(optimizer).__name__, "decoupled_weight_decay": decoupled}


def main(plan_path: str) -> None:
    process_gc.imports_done(command=True)  # as `python -m llava.train.train` runs (this runs it in-process)
    with open(plan_path) as f:
        plan = json.load(f)
    modes = {}
    for run in plan:
        trainer = train(run["argv"])
        modes[run["name"]] = {"deepspeed": trainer.is_deepspeed_enabled, "zero3": is_deepspeed_zero3_enabled(),
                              **optimizer_kind(trainer)}
        if trainer.args.process_index == 0:
            with open(plan_path + ".modes", "w") as f:
                json.dump(modes, f)
        del trainer


if __name__ == "__main__":
    main(sys.argv[1])
