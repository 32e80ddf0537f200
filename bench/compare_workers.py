"""How `make compare` should use the cores: one run with every thread, or runs side by side with a share each.

python bench/compare_workers.py [--steps 40] [--scheme lora] [--data playground/data/mixture]

Trains the kit's recipe (`llava.kit.compare.train_args`, small preset, its mixture; built first if missing) for
`--steps` steps three times: once alone with cpu_count threads, then twice at the same moment with cpu_count // 2
threads each. Prints the wall time of each phase (process start and model loading included) and, last, one JSON object:
  side_by_side_throughput   (2 x alone wall) / (side by side wall): > 1 means two workers finish runs faster
  train_ratio               the same from the trainer's own train_runtime (loading excluded)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

from llava.kit.compare import train_args, train_sizes
from llava.kit.easy_vqa_mixture import build


def launch(scheme: str, manifest: dict, data: str, out: str, steps: int, threads: int) -> subprocess.Popen:
    os.makedirs(out, exist_ok=True)
    args = train_args(scheme, manifest["mixture"], data, out, 0, steps, batch=2)
    log = open(os.path.join(out, "train.log"), "w")
    return subprocess.Popen([sys.executable, "-m", "llava.train.train", *args], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": str(threads)})


def runtime(out: str) -> float:
    found = re.findall(r"'train_runtime': ([0-9.]+)", open(os.path.join(out, "train.log")).read())
    if not found:
        raise RuntimeError(f"no train_runtime in {out}/train.log: the run failed")
    return float(found[-1])


def timed(procs: list[subprocess.Popen]) -> float:
    start = time.time()
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError(f"a training run failed (exit {p.returncode}); see its train.log")
    return time.time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--scheme", default="lora")
    ap.add_argument("--data", default="playground/data/mixture")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    manifest_path = os.path.join(args.data, "manifest.json")
    manifest = json.load(open(manifest_path)) if os.path.exists(manifest_path) else \
        build(args.data, 1200, 40, seed=0, train_sizes=train_sizes(1200))
    with tempfile.TemporaryDirectory() as tmp:
        alone = timed([launch(args.scheme, manifest, args.data, f"{tmp}/alone", args.steps, cores)])
        side = timed([launch(args.scheme, manifest, args.data, f"{tmp}/side{k}", args.steps, max(1, cores // 2))
                      for k in range(2)])
        alone_train = runtime(f"{tmp}/alone")
        side_train = max(runtime(f"{tmp}/side{k}") for k in range(2))
    print(f"{platform.processor() or platform.machine()}, {cores} cores, {args.scheme}, {args.steps} steps x 2")
    print(f"alone ({cores} threads): {alone:.1f} s wall, {alone_train:.1f} s training")
    print(f"two side by side ({max(1, cores // 2)} thread(s) each): {side:.1f} s wall, {side_train:.1f} s training")
    print(json.dumps({"side_by_side_throughput": round(2 * alone / side, 3),
                      "train_ratio": round(2 * alone_train / side_train, 3)}))


if __name__ == "__main__":
    main()
