"""How long a process that loaded the training stack takes to end, with and without `llava.quick_exit`.

python bench/process_exit.py [--rounds 5] [--module llava.train.train]

Each round starts two interpreters in a shuffled order: one imports `--module` and exits as usual (llava's exit hook
freezes the collector), the other unregisters that hook first. A child prints the clock after its imports; the
parent takes the time from that line to the child's end. The last printed line is one JSON object: the median exit
time of each, and their median per-round ratio (the machine's drifts cancel within a round).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import subprocess
import sys
import time

CHILD = """
import atexit, gc, sys, time
import {module}
if {without}:
    atexit.unregister(gc.freeze)
sys.stdout.write(repr(time.time()) + "\\n")
sys.stdout.flush()
"""


def exit_seconds(module: str, without: bool) -> float:
    proc = subprocess.Popen([sys.executable, "-c", CHILD.format(module=module, without=without)],
                            stdout=subprocess.PIPE, text=True)
    printed = float(proc.stdout.readline())
    proc.wait()
    return time.time() - printed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--module", default="llava.train.train")
    args = ap.parse_args()
    rows = {"frozen": [], "collected": []}
    for _ in range(args.rounds):
        order = ["frozen", "collected"]
        random.shuffle(order)
        for kind in order:
            rows[kind].append(exit_seconds(args.module, without=kind == "collected"))
    ratios = [c / f for f, c in zip(rows["frozen"], rows["collected"])]
    print(f"{platform.processor() or platform.machine()}, python {platform.python_version()}, module {args.module}")
    for kind, values in rows.items():
        print(f"{kind:>9}: " + " ".join(f"{v:.2f}" for v in values) + " s")
    print(json.dumps({"frozen_s": round(statistics.median(rows["frozen"]), 3),
                      "collected_s": round(statistics.median(rows["collected"]), 3),
                      "collected_over_frozen": round(statistics.median(ratios), 2)}))


if __name__ == "__main__":
    main()
