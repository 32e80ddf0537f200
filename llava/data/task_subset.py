"""The records of some tasks of a recipe's train.json, for a run on part of the data (the paper's Table 1 trains
single LoRAs on VQA alone and on Gen = LLaVA-15k + VQG alone; the MoE-LoRA baseline combines such LoRAs).

    python -m llava.data.task_subset --data WORK/data/train.json --tasks llava,vqg --out WORK/data/task-gen.json
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter


def subset(data: str, tasks: list[str], out: str) -> Counter:
    with open(data, encoding="utf-8") as f:
        records = json.load(f)
    if not isinstance(records, list):
        raise ValueError(f"{data}: expected a JSON list of LLaVA records")
    found = Counter(r.get("task") for r in records if isinstance(r, dict))
    unknown = [t for t in tasks if t not in found]
    if unknown:
        raise ValueError(f"{data}: no records of task(s) {unknown}; its tasks are {sorted(map(str, found))}")
    kept = [r for r in records if r.get("task") in tasks]
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(kept, f)
    os.replace(tmp, out)
    return Counter({t: found[t] for t in tasks})


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a recipe's train.json (every record has a task)")
    ap.add_argument("--tasks", required=True, help="comma-separated task names to keep")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    try:
        counts = subset(args.data, [t for t in args.tasks.split(",") if t], args.out)
    except (FileNotFoundError, ValueError, json.JSONDecodeError) as e:
        raise SystemExit(f"error: {e}") from e
    print(f"{sum(counts.values())} records ({', '.join(f'{t} {n}' for t, n in counts.items())}) -> {args.out}")


if __name__ == "__main__":
    main()
