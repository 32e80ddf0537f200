"""Optional dependencies fail early, naming the extra that provides them."""

from __future__ import annotations

from llava.extras import require_extra


def check_training_extras(args) -> None:
    """The extras a TrainingArguments instance will need, checked before any model is loaded."""
    if args.deepspeed:
        require_extra("deepspeed", "deepspeed", f"--deepspeed {args.deepspeed}")
    report_to = args.report_to if isinstance(args.report_to, list) else [args.report_to]
    if "wandb" in report_to or "all" in report_to:
        require_extra("wandb", "wandb", "--report_to wandb")
    if "tensorboard" in report_to:
        require_extra("tensorboard", "tensorboard", "--report_to tensorboard")
