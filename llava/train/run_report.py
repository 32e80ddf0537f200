"""What a finished run prints and leaves beside its checkpoints: data losses, router load per task, plots."""

from __future__ import annotations

import os

from llava.adapters.attached import adapter_config, routing_state
from llava.adapters.state import load_table
from llava.train.plots import plot_losses, plot_router_health, plot_router_load


def write_run_report(trainer, model, dataset, collator) -> None:
    args = trainer.args
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
