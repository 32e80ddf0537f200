"""A router-study setting over several seeds: each seed is one `router_specialisation` command (its own --out and
--seed); this reads their results back and pools them. Per seed, the setting's mutual information and how many layers
pass half a bit, beside the preset's; over all seeds and questions, each column's accuracy against the preset (paired
bootstrap over seeds and questions, Holm-adjusted over the columns), as `make compare` tests schemes.

python -m llava.kit.router_seeds --variant prompt_coef0 runs/router-prompt runs/router-prompt-seed1 ...
"""

from __future__ import annotations

import argparse
import json
import os

from llava.kit.router_report import is_preset, specialised_layers
from llava.kit.stats import as_array, holm, interval, paired_test
from llava.kit.table import COLUMNS


def study_rows(study: str, variant: str) -> tuple[int, dict, dict]:
    """(seed, the preset's row, the variant's row) of one study folder."""
    with open(os.path.join(study, "settings.json")) as f:
        seed = json.load(f)["seed"]
    with open(os.path.join(study, "router.json")) as f:
        rows = json.load(f)
    preset = [r for r in rows if is_preset(r)]
    chosen = [r for r in rows if r.get("variant") == variant]
    if len(preset) != 1 or len(chosen) != 1:
        raise SystemExit(f"{study}: router.json holds no single preset row and {variant!r} row")
    return seed, preset[0], chosen[0]


def outcomes(row: dict, study: str, compare: str, seed: int) -> dict:
    root = compare if not row.get("variant") else os.path.join(study, row["variant"])
    with open(os.path.join(root, row["scheme"], f"seed{seed}", "eval", "outcomes.json")) as f:
        return json.load(f)


def pooled(studies: list[str], variant: str, compare: str) -> str:
    per_seed, mine, theirs = [], {c: [] for c in COLUMNS}, {c: [] for c in COLUMNS}
    for study in studies:
        seed, preset, row = study_rows(study, variant)
        passed = [specialised_layers(r) for r in (preset, row)]
        per_seed.append(f"| {seed} | {preset['mi_mean']:.3f} | {passed[0]} of {len(preset['mi_bits'])} | "
                        f"{row['mi_mean']:.3f} | {passed[1]} of {len(row['mi_bits'])} |")
        a, b = outcomes(row, study, compare, seed), outcomes(preset, study, compare, seed)
        for c in COLUMNS:
            mine[c].append(a[c])
            theirs[c].append(b[c])
    tests = {c: paired_test(as_array(mine[c]), as_array(theirs[c])) for c in COLUMNS}
    adjusted = holm({c: t["p"] for c, t in tests.items()})
    lines = [f"`{variant}` against the preset, {len(studies)} seeds", "",
             "| seed | preset MI mean (bits) | preset layers >= 0.5 | variant MI mean | variant layers >= 0.5 |",
             "|---|---|---|---|---|", *per_seed, "",
             "| column | preset | variant | difference [95%] | p (Holm over columns) |", "|---|---|---|---|---|"]
    for c in COLUMNS:
        p_mean, p_lo, p_hi = interval(as_array(theirs[c]))
        v_mean, v_lo, v_hi = interval(as_array(mine[c]))
        t = tests[c]
        lines.append(f"| {c} | {p_mean:.1f} [{p_lo:.1f}, {p_hi:.1f}] | {v_mean:.1f} [{v_lo:.1f}, {v_hi:.1f}] | "
                     f"{t['diff']:+.1f} [{t['low']:+.1f}, {t['high']:+.1f}] | {t['p']:.3f} ({adjusted[c]:.3f}) |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("studies", nargs="+", help="router_specialisation --out folders, one seed each")
    ap.add_argument("--variant", required=True, help="the variant's name in those studies")
    ap.add_argument("--compare", default="runs/compare", help="where the preset's runs live (their --compare)")
    args = ap.parse_args(argv)
    for study in args.studies:
        if not os.path.exists(os.path.join(study, "router.json")):
            raise SystemExit(f"{study}: no router.json (run llava.kit.router_specialisation there first)")
    print(pooled(args.studies, args.variant, args.compare))


if __name__ == "__main__":
    main()
