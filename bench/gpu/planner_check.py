"""The planner against a GPU run: `python bench/gpu/planner_check.py docs/gpu/h200-run2.json`.

For every scheme the run measured (7B shape), what `llava.train.plan` predicts at the same batch and length on one
GPU without ZeRO: peak memory, and the step time of train/estimate.py at its assumed MFU on the datasheet peak; then
the utilisation the measured step implies in the planner's own FLOP count (recompute included).
"""

from __future__ import annotations

import json
import sys

from train_step import planner_prediction


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python bench/gpu/planner_check.py GPU_REPORT.json")
    with open(argv[0]) as f:
        report = json.load(f)
    train = report.get("train") or {}
    peak = train.get("datasheet_bf16_flops")
    if not peak:
        raise SystemExit(f"{argv[0]}: no GPU training part with a known datasheet peak (a --cpu-smoke report?)")
    print("| scheme | batch x seq | step (s) | planner step (s) | utilisation in the planner's FLOPs | peak (GiB) | "
          "planner (GiB) | planner / measured memory |")
    print("|---|---|---|---|---|---|---|---|")
    for name, row in train["schemes"].items():
        if "step_s" not in row:
            continue
        p = planner_prediction(None, name, False, row["batch"], row["seq"], peak)
        print(f"| {name} | {row['batch']} x {row['seq']} | {row['step_s']:.3f} | {p['planner_step_s']:.3f} | "
              f"{100 * p['planner_flops'] / row['step_s'] / peak:.1f}% (assumed {100 * p['planner_mfu']:.0f}%) | "
              f"{row['peak_gib']:.2f} | {p['predicted_gib']:.2f} | {p['predicted_gib'] / row['peak_gib']:.2f} |")


if __name__ == "__main__":
    main()
