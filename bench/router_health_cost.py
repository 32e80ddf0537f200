"""What logging router health to tensorboard costs a `make compare` run: the kit's routed AsymLoRA recipe trained with
`--report_to tensorboard` (router health: per-layer load, entropy, gradient norm, weight change, the task-expert
mutual information; what compare's table reads) and with `--report_to none`, side by side.

python bench/router_health_cost.py [--steps 60] [--rounds 2] [--out runs/bench-router-health]

Each round starts both trainings at once, one thread each (as two `make compare` workers), so load on the machine
hits both alike; the table gives each run's `train_runtime` and the ratio with health to without.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

from llava.kit.compare import kit_manifest, parser, train_args

ARMS = ("none", "tensorboard")


def runtime(out: str) -> float:
    with open(os.path.join(out, "trainer_state.json")) as f:
        return next(h["train_runtime"] for h in json.load(f)["log_history"] if "train_runtime" in h)


def one_round(manifest: dict, root: str, steps: int) -> dict[str, float]:
    procs = {}
    for arm in ARMS:
        out = os.path.join(root, arm)
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        args = train_args("asymlora", manifest["mixture"], manifest["pairs_root"], out, 0, steps, "small", 2)
        args[args.index("--report_to") + 1] = arm
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        procs[arm] = subprocess.Popen([sys.executable, "-m", "llava.train.train", *args], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    for arm, proc in procs.items():
        if proc.wait() != 0:
            raise SystemExit(f"the {arm} run failed (exit {proc.returncode}): {root}/{arm}")
    return {arm: runtime(os.path.join(root, arm)) for arm in ARMS}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--data", default="playground/data/mixture")
    ap.add_argument("--out", default="runs/bench-router-health")
    args = ap.parse_args()
    manifest = kit_manifest(args.data, parser().parse_args([]))  # make compare's mixture, as it builds it
    print("| round | train_runtime, no tracker (s) | with router health (s) | ratio |\n|---|---|---|---|")
    for k in range(args.rounds):
        times = one_round(manifest, args.out, args.steps)
        print(f"| {k + 1} | {times['none']:.1f} | {times['tensorboard']:.1f} | "
              f"{times['tensorboard'] / times['none']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
