"""Where the test suite's CPU goes: the processes it starts, by what they import, and by test file.

    SUITE_CENSUS_LOG=/tmp/census.jsonl PYTHONPATH=bench/suite_census .venv/bin/python -m pytest -q -n 2 --dist loadfile
    python bench/suite_census.py /tmp/census.jsonl

Each Python process logs its CPU time (user + system) at exit (bench/suite_census/sitecustomize.py); processes killed
by a test log nothing. The two long-lived pytest workers are counted apart from the processes the tests start.
The import cost per kind of process is measured here too (`python -X importtime` would show where it goes).
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys

IMPORTS = {"torch only": "import torch", "transformers (a model)": "import llava.eval.generate",
           "transformers + DeepSpeed (training)": "import llava.train.train, deepspeed"}


def kind(record: dict) -> str:
    if record["transformers"]:
        return "transformers + DeepSpeed (training)" if record["deepspeed"] else "transformers (a model)"
    return "torch only" if record["torch"] else "no torch"


def import_seconds(statement: str, rounds: int = 3) -> float:
    """The least CPU time, over `rounds` fresh interpreters, of a process that runs `statement` and exits."""
    best = float("inf")
    for _ in range(rounds):
        proc = subprocess.run([sys.executable, "-c", f"import os; {statement}; t = os.times(); print(t.user + t.system)"],
                              capture_output=True, text=True, check=True)
        best = min(best, float(proc.stdout.split()[-1]))
    return best


def main():
    records = [json.loads(line) for line in open(sys.argv[1])]
    workers = [r for r in records if not r["test"] and "xdist" not in " ".join(r["argv"]) and r["wall"] > 300]
    started = [r for r in records if r not in workers]
    print(f"{len(started)} processes started by tests, {sum(r['cpu'] for r in started):.0f} CPU-s; "
          f"pytest's own processes {sum(r['cpu'] for r in workers):.0f} CPU-s\n")
    by_kind = collections.defaultdict(list)
    for r in started:
        by_kind[kind(r)].append(r["cpu"])
    print("| process imports | processes | CPU-s | CPU-s per process | import alone, CPU-s |\n|---|---|---|---|---|")
    for name, cpu in sorted(by_kind.items(), key=lambda kv: -sum(kv[1])):
        alone = f"{import_seconds(IMPORTS[name]):.2f}" if name in IMPORTS else "-"
        print(f"| {name} | {len(cpu)} | {sum(cpu):.0f} | {sum(cpu) / len(cpu):.2f} | {alone} |")
    by_file = collections.defaultdict(list)
    for r in started:
        by_file[r["test"].split("::")[0]].append(r["cpu"])
    print("\n| test file | processes | CPU-s |\n|---|---|---|")
    for name, cpu in sorted(by_file.items(), key=lambda kv: -sum(kv[1]))[:12]:
        print(f"| {name} | {len(cpu)} | {sum(cpu):.0f} |")


if __name__ == "__main__":
    main()
