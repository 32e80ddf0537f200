"""What a finished run prints and leaves beside its checkpoints: data losses, router load per task, plots."""

from __future__ import annotations

import json
import os

from llava.adapters.attached import adapter_config, routing_state
from llava.adapters.state import load_table
from llava.train.plots import plot_losses, plot_router_health, plot_router_load

SUMMARY = "run_summary.json"


def run_summary(trainer, model) -> dict:
    """What a reader comparing this run with a published one needs and the flags alone do not say: the optimizer
    steps taken, the global batch they took (processes included), and the precision the adapters were kept in."""
    args = trainer.args
    config = adapter_config(model)
    dtype = config.adapter_dtype if config is not None else None
    compute = "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"
    if dtype == "base" and not args.deepspeed:
        adapters = f"{compute}, updated with no fp32 copy" if compute != "fp32" else "fp32"
    elif dtype == "base":
        adapters = f"{compute} in the model, fp32 masters in DeepSpeed's optimizer"
    else:
        adapters = "fp32 masters" + (f", computed in {compute}" if compute != "fp32" else "")
    return {"optimizer_steps": trainer.state.global_step, "world_size": args.world_size,
            "global_batch": args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size,
            "precision": compute, "adapter_precision": adapters, "deepspeed": bool(args.deepspeed)}


def write_run_report(trainer, model, dataset, collator) -> None:
    args = trainer.args
    if args.should_save:
        with open(os.path.join(args.output_dir, SUMMARY), "w") as f:
            json.dump(run_summary(trainer, model), f, indent=1)
    lines = [f"samples truncated to model_max_length={args.model_max_length}: {dataset.truncated}",
             f"bad samples skipped: {dataset.report.total() + dataset.preflight_skipped} before training "
             f"(OUTPUT/skipped_samples.jsonl), {collator.dropped} at fetch"]
    plots = os.path.join(args.output_dir, "plots")
    state = routing_state(model)
    if state is not None and state.load is not None:
        unit = adapter_config(model).spec.load_unit
        table = load_table(state.load, dataset.task_names, unit)
        what = "a-factor selection weight per factor" if unit == "factor" else "gate mass per expert"
        lines += [f"router load per task (share of {what}, all routed layers):", table]
        if args.should_save:
            with open(os.path.join(args.output_dir, "router_load.md"), "w") as f:
                f.write(table + "\n")
            plot_router_load(state.load, state.layer_load, dataset.task_names, unit,
                             os.path.join(plots, "router_load.png"))
    if args.should_save and trainer.router_health is not None and "tensorboard" in args.report_to:
        plot_router_health(os.path.join(args.output_dir, "runs"), os.path.join(plots, "router_health.png"))
    if args.should_save and plot_losses(trainer.state.log_history, os.path.join(plots, "loss.png")):
        lines.append(f"plots: {plots}")
    if args.should_log:
        print("\n".join(lines))
