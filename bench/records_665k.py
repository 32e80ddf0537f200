"""Reading a 665k-record LLaVA mixture: Python objects (sources.read_records) vs the Arrow table (arrow_records).

python bench/records_665k.py [--n 665000] [--workers 4]

Writes a synthetic llava_v1_5_mix665k-like JSON (ids, images, 1-3 exchanges of LLaVA-length text), then, each in a
fresh process: the old reader, the Arrow reader with a cold cache (first read), and with the cache (re-read). For
each: the time to read, the main process's RSS growth, and the memory each of W forked workers adds while it
touches its share of the records as a dataloader worker would (RSS, and private dirty memory: what copy-on-access really costs).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

WORDS = ("the a of image shows man woman dog cat red blue car street table two people sitting standing near "
         "what is in color how many where does this picture left right").split()


def write_mixture(path: str, n: int) -> None:
    rng = random.Random(0)
    with open(path, "w") as f:
        f.write("[")
        for i in range(n):
            turns = []
            for k in range(rng.choice((1, 1, 2, 3))):
                q = " ".join(rng.choices(WORDS, k=rng.randint(6, 20))) + "?"
                turns += [{"from": "human", "value": ("<image>\n" if k == 0 else "") + q},
                          {"from": "gpt", "value": " ".join(rng.choices(WORDS, k=rng.randint(3, 80))) + "."}]
            row = {"id": f"{i:09d}", "image": f"coco/train2017/{i % 118_000:012d}.jpg", "conversations": turns}
            f.write(("," if i else "") + json.dumps(row))
        f.write("]")


def memory() -> tuple[float, float, float]:
    """(RSS, PSS, private dirty) of this process in MB. RSS also counts pages of the mapped Arrow file that this process
    has touched: page cache, clean, shared and dropped under pressure. Private dirty memory (new heap, and the pages a
    forked worker copies when it touches, and so writes the refcounts of, the parent's Python objects) is what a
    process really costs."""
    fields = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                fields[parts[0].rstrip(":")] = int(parts[1])
    return fields["Rss"] / 1024, fields["Pss"] / 1024, fields["Private_Dirty"] / 1024


def _worker(records, share: range, queue, barrier) -> None:
    before = memory()
    chars = 0
    for i in share:
        r = records[i]
        chars += len(r.turns[-1][1]) + len(r.sample_id)
    barrier.wait()  # PSS splits shared pages among the processes mapping them: measure with every worker alive
    queue.put([x - y for x, y in zip(memory(), before)])
    barrier.wait()


def measure(kind: str, spec: str, workers: int) -> dict:
    """Runs in its own process: load with `kind`, then fork workers that touch their share of the records."""
    import llava.data.arrow_records as arrow_records
    from llava.data.sources import SkipReport, read_records

    before = memory()
    start = time.perf_counter()
    if kind == "python":
        records, _ = read_records(spec)
    else:
        records, _ = arrow_records.load_records(spec, skip_bad=False, report=SkipReport())
    seconds = time.perf_counter() - start
    main = [x - y for x, y in zip(memory(), before)]
    ctx = multiprocessing.get_context("fork")
    queue, barrier = ctx.Queue(), ctx.Barrier(workers)
    n = len(records)
    procs = [ctx.Process(target=_worker, args=(records, range(w, n, workers), queue, barrier)) for w in range(workers)]
    for p in procs:
        p.start()
    grown = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    worst = [max(g[k] for g in grown) for k in range(3)]
    return {"reader": kind, "records": n, "seconds": round(seconds, 2), "main_mb": [round(x) for x in main],
            "worker_mb": [round(x) for x in worst]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=665_000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--measure", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], args.measure[1], args.workers)))
        return
    root = tempfile.mkdtemp(prefix="records-bench-")
    try:
        data = os.path.join(root, "llava_v1_5_mix665k.json")
        start = time.perf_counter()
        write_mixture(data, args.n)
        print(f"wrote {args.n} records ({os.path.getsize(data) / 1e6:.0f} MB) in {time.perf_counter() - start:.0f} s")
        env = {**os.environ, "LLAVA_ASYMLORA_CACHE": os.path.join(root, "cache")}
        rows = []
        for kind, label in (("python", "Python objects (before)"), ("arrow", "Arrow, first read (builds cache)"),
                            ("arrow", "Arrow, cached re-read")):
            out = subprocess.run([sys.executable, __file__, "--workers", str(args.workers), "--measure", kind, data],
                                 env=env, capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append((label, row))
            print(label, row, flush=True)
        print("\n| reader | read time (s) | main process growth, MB (RSS / PSS / private dirty) | "
              "each worker's growth, MB (RSS / PSS / private dirty) |")
        print("|---|---|---|---|")
        for label, row in rows:
            print(f"| {label} | {row['seconds']} | {' / '.join(map(str, row['main_mb']))} | "
                  f"{' / '.join(map(str, row['worker_mb']))} |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
