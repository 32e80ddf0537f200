"""A short `--help` for the train entry point: our flags and the LLaVA recipe's Trainer flags, not all ~160.

transformers' TrainingArguments contributes well over a hundred options; a LLaVA user looks for the dozen the
recipe sets and for the adapter flags. `--help-all` prints the full argparse help.
"""

from __future__ import annotations

import dataclasses

import transformers

from llava.train.args import DataArguments, ModelArguments, TrainingArguments

# The Trainer options LLaVA's finetune scripts set (scripts/v1_5/finetune_lora.sh), in that order.
RECIPE_FLAGS = [
    "output_dir", "deepspeed", "bf16", "tf32", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "gradient_accumulation_steps", "learning_rate", "weight_decay", "warmup_ratio", "lr_scheduler_type",
    "logging_steps", "save_strategy", "save_steps", "save_total_limit", "activation_checkpointing",
    "dataloader_num_workers", "report_to", "resume_from_checkpoint", "seed", "use_cpu",
]


def _line(f: dataclasses.Field) -> str:
    default = f.default if f.default is not dataclasses.MISSING else None
    help_text = f.metadata.get("help", "") if f.metadata else ""
    help_text = " ".join(help_text.split()).replace("%%", "%")  # argparse's escaping, not ours
    if len(help_text) > 100:
        help_text = help_text[:97] + "..."
    return f"  --{f.name:<28} {help_text} (default: {default})"


def short_help() -> str:
    base = {f.name for f in dataclasses.fields(transformers.TrainingArguments)}
    ours = [f for f in dataclasses.fields(TrainingArguments) if f.name not in base or f.name in ("warmup_ratio",)]
    every = {f.name: f for f in dataclasses.fields(TrainingArguments)}
    sections = [
        ("model (LLaVA's ModelArguments)", dataclasses.fields(ModelArguments)),
        ("data (LLaVA's DataArguments)", dataclasses.fields(DataArguments)),
        ("adapters and LLaVA training flags", [f for f in ours if f.name != "warmup_ratio"]),
        ("Trainer flags the LLaVA recipe sets", [every[n] for n in RECIPE_FLAGS if n in every]),
    ]
    lines = ["usage: python -m llava.train.train [--flag value ...]   (also: llava-train)", ""]
    for title, fields in sections:
        lines.append(title + ":")
        lines += [_line(f) for f in fields]
        lines.append("")
    total = len(every) + len(dataclasses.fields(ModelArguments)) + len(dataclasses.fields(DataArguments))
    lines.append(f"--help-all lists every option ({total}, transformers' TrainingArguments included).")
    return "\n".join(lines)
