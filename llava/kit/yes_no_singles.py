"""Does MixLoRA fail the paired yes/no benchmark because it never saw a single yes/no question? The kit's training
mixture asks yes/no only inside multi-question conversations, and MixLoRA's router picks its factors from the mean
over the prompt: one whole conversation is routed as one instance, so a one-question prompt (as the benchmark asks)
is a kind of instance the router never met. The test: retrain with a share of the training yes/no images asked one
question each (`--yes-no-singles`, same images, same steps; everything else `make compare`'s recipe) and compare seed
for seed with `make compare`'s runs on the same held-out questions.

Reported per seed: paired acc+ with and without singles beside the blind baseline's + 20 points (the bar a scheme
must clear to count as having learnt yes/no), and per column the paired test singles - conversations.

python -m llava.kit.yes_no_singles --out runs/yes_no_singles [--share 0.25] [--schemes mixlora] [--compare runs/compare]
"""

from __future__ import annotations

import argparse
import json
import os

from llava.console import progress_bars_only_on_a_terminal
from llava.kit.compare import (
    check_settings,
    compare_settings,
    kit_manifest,
    parser,
    read_outcomes,
    run_one,
    workers_for,
)
from llava.kit.evaluate import blind_outcomes
from llava.kit.stats import as_array, paired_test
from llava.kit.table import COLUMNS
from llava.kit.workers import in_workers

BAR = 20.0  # points above the blind baseline's paired acc+


def percent(run: dict, column: str) -> float:
    return 100 * sum(run[column].values()) / len(run[column])


def report(scheme: str, seeds: list[int], before: list[dict], after: list[dict], blind: dict, share: float) -> dict:
    bar = percent(blind, "pairs acc+") + BAR
    per_seed = [{"seed": s, "conversations": percent(b, "pairs acc+"), "singles": percent(a, "pairs acc+")}
                for s, b, a in zip(seeds, before, after)]
    tests = {c: paired_test(as_array([r[c] for r in after]), as_array([r[c] for r in before])) for c in COLUMNS}
    return {"scheme": scheme, "share": share, "bar": bar, "per_seed": per_seed,
            "clears_bar_every_seed": all(r["singles"] >= bar for r in per_seed), "singles_minus_conversations": tests}


def markdown(rows: list[dict]) -> str:
    lines = []
    for r in rows:
        lines += [f"### {r['scheme']}: paired acc+ per seed (bar: blind + {BAR:g} = {r['bar']:.1f})", "",
                  "| seed | yes/no in conversations | with singles | clears the bar |", "|---|---|---|---|"]
        lines += [f"| {s['seed']} | {s['conversations']:.1f} | {s['singles']:.1f} | "
                  f"{'yes' if s['singles'] >= r['bar'] else 'no'} |" for s in r["per_seed"]]
        lines += ["", f"singles ({r['share']:g} of yes/no images) - conversations, paired over seeds and questions:", "",
                  "| column | difference (points) | 95% interval | p |", "|---|---|---|---|"]
        lines += [f"| {c} | {t['diff']:+.1f} | [{t['low']:+.1f}, {t['high']:+.1f}] | {t['p']:.4f} |"
                  for c, t in r["singles_minus_conversations"].items()]
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    progress_bars_only_on_a_terminal()  # a log file gets no carriage-return floods
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/yes_no_singles")
    ap.add_argument("--compare", default="runs/compare", help="`make compare`'s output (runs trained there if missing)")
    ap.add_argument("--share", type=float, default=0.25, help="share of training yes/no images asked one question")
    args, recipe = ap.parse_known_args(argv)
    kit = parser().parse_args(recipe)  # `make compare`'s recipe flags (--seeds, --schemes mixlora by default here)
    if "--schemes" not in recipe:
        kit.schemes = "mixlora"
    if not 0 < args.share <= 1:
        raise SystemExit(f"--share is a share in (0, 1], not {args.share}")
    seeds, schemes = [int(s) for s in kit.seeds.split(",")], kit.schemes.split(",")
    check_settings(args.compare, compare_settings(kit))
    base = kit_manifest(kit.data, kit)
    kit.yes_no_singles = args.share
    check_settings(args.out, compare_settings(kit))
    singles = kit_manifest(kit.data, kit)
    jobs = [(run_one, s, seed, m, m["pairs_root"], root, kit.steps, kit.model, kit.batch)
            for seed in seeds for s in schemes for m, root in ((base, args.compare), (singles, args.out))]
    in_workers(jobs, workers_for(jobs, kit.workers), "yes/no singles runs")
    blind = blind_outcomes(base)
    rows = [report(s, seeds, read_outcomes(args.compare, s, seeds), read_outcomes(args.out, s, seeds), blind, args.share)
            for s in schemes]
    with open(os.path.join(args.out, "singles.json"), "w") as f:
        json.dump(rows, f, indent=1)
    text = markdown(rows)
    with open(os.path.join(args.out, "singles.md"), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
