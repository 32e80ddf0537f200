"""A command's start-up and exit with and without `llava.process_gc`, side by side.

python bench/process_gc.py [--rounds 5] [--module llava.train.train]

Each round starts four interpreters in a shuffled order, each running `--module` as the main module with `--help`
(its imports, argument parsing, exit):
  start-up: `python -m MODULE` (young-generation threshold raised) against runpy.run_module from `python -c` (the
            same code, the default threshold); the time until the process has imported its stack and parsed
  exit:     the same command with the exit hook kept or unregistered; the time from the help text to the end
The last printed line is one JSON object: median seconds of each, and the median per-round ratios (the machine's
drifts cancel within a round).
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

# the child prints the clock at the end of its module's imports (an import hook would perturb what is measured)
RUNPY = ("import atexit, gc, runpy, sys, time\n"
         "sys.argv = ['{module}', '--help']\n"
         "{unregister}\n"
         "try:\n"
         "    runpy.run_module('{module}', run_name='__main__', alter_sys=True)\n"
         "except SystemExit:\n"
         "    pass\n"
         "sys.stdout.write('\\nDONE ' + repr(time.time()) + '\\n'); sys.stdout.flush()\n")


def run(argv: list[str]) -> tuple[float, float]:
    """(seconds until the help text was printed, seconds from then until the process ended)."""
    t0 = time.time()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    printed = None
    for line in proc.stdout:
        if line.startswith("DONE "):
            printed = float(line.split()[1])
    proc.wait()
    end = time.time()
    return printed - t0, end - printed


def command(module: str, threshold_raised: bool, unregister: bool) -> list[str]:
    code = RUNPY.format(module=module, unregister="atexit.unregister(gc.freeze)" if unregister else "")
    if threshold_raised:  # what `python -m` does, with the measuring wrapper around it
        code = "import sys; sys.argv = ['-m']; import llava\n" + code
    return [sys.executable, "-c", code]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--module", default="llava.train.train")
    args = ap.parse_args()
    kinds = {"policy": (True, False), "default threshold": (False, False), "exit collected": (True, True)}
    rows = {kind: [] for kind in kinds}
    for _ in range(args.rounds):
        order = list(kinds)
        random.shuffle(order)
        for kind in order:
            rows[kind].append(run(command(args.module, *kinds[kind])))
    print(f"{platform.processor() or platform.machine()}, python {platform.python_version()}, module {args.module}")
    for kind, values in rows.items():
        print(f"{kind:>17}: start-up " + " ".join(f"{s:.2f}" for s, _ in values) + " s; exit "
              + " ".join(f"{e:.2f}" for _, e in values) + " s")
    start = [d[0] / p[0] for p, d in zip(rows["policy"], rows["default threshold"])]
    exit_ = [c[1] / p[1] for p, c in zip(rows["policy"], rows["exit collected"])]
    print(json.dumps({"start_up_s": round(statistics.median(s for s, _ in rows["policy"]), 2),
                      "start_up_default_threshold_s": round(statistics.median(s for s, _ in rows["default threshold"]), 2),
                      "default_over_raised_start_up": round(statistics.median(start), 2),
                      "exit_s": round(statistics.median(e for _, e in rows["policy"]), 2),
                      "exit_collected_s": round(statistics.median(e for _, e in rows["exit collected"]), 2),
                      "collected_over_frozen_exit": round(statistics.median(exit_), 2)}))


if __name__ == "__main__":
    main()
