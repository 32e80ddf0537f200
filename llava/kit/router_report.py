"""The router study's tables: per setting, how much the routers depend on the task (mutual information, and in how
many layers it reaches half a bit), whether they learnt at all (gradient share, weight change: router_training.py)
and the kit's accuracies; then each setting against the preset, paired over the same questions."""

from __future__ import annotations

from llava.adapters import presets
from llava.kit.stats import as_array, holm, paired_test
from llava.kit.table import COLUMNS

PRESET_COEF = presets.preset("asymlora")["balance_coef"]
SPECIALISED_BITS = 0.5  # issue bar: a layer whose top expert carries half a bit about the task


def setting(row: dict) -> str:
    """What a row varies: its balance coefficient, or its variant's name and flags (at the preset's coefficient)."""
    if row.get("variant"):
        return f"{row['variant']}: {row['flags']}"
    return f"balance coef {row['coef']:g}"


def specialised_layers(row: dict) -> int:
    """Layers whose task-expert mutual information reaches SPECIALISED_BITS."""
    return sum(bits >= SPECIALISED_BITS for bits in row["mi_bits"].values())


def is_preset(row: dict) -> bool:
    return row["coef"] == PRESET_COEF and not row.get("variant")


def report(rows: list[dict]) -> str:
    lines = ["| scheme | setting | MI mean, all tokens (bits) | MI max (layer) | layers with MI >= 0.5 | MI mean, answer "
             "tokens | router / total gradient norm, mean [min, max] | router weight change, median layer | "
             + " | ".join(COLUMNS) + " |", "|---|---|---|---|---|---|---|---|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [f"{m:.1f} [{lo:.1f}, {hi:.1f}]" for m, lo, hi in (r["accuracy"][c] for c in COLUMNS)]
        specialised = specialised_layers(r)
        lines.append(f"| {r['scheme']} | {setting(r)} | {r['mi_mean']:.4f} | {r['mi_max']:.4f} ({r['mi_max_layer']}) "
                     f"| {specialised} of {len(r['mi_bits'])} | {r['mi_answer_mean']:.4f} | {training_cells(r)} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def training_cells(row: dict) -> str:
    t = row.get("training")
    if not t:
        return "n/a | n/a"  # no router health in tensorboard (the tensorboard extra missing)
    return (f"{t['grad_share_mean']:.3f} [{t['grad_share_min']:.3f}, {t['grad_share_max']:.3f}] | "
            f"{t['weight_change_median']:.2f}")


def costs(rows: list[dict]) -> str:
    """Each coefficient's (and variant's) accuracy minus the preset's, same scheme and seed, paired over the questions (one seed:
    McNemar's exact test), Holm-adjusted over every test of the table: with dozens of cells a few raw p < 0.05 are
    expected by chance."""
    preset = {r["scheme"]: r["outcomes"] for r in rows if is_preset(r)}
    others = [r for r in rows if not is_preset(r) and r["scheme"] in preset]
    tests = {(k, c): paired_test(as_array([r["outcomes"][c]]), as_array([preset[r["scheme"]][c]]))
             for k, r in enumerate(others) for c in COLUMNS}
    adjusted = holm({key: t["p"] for key, t in tests.items()})

    def cell(key) -> str:
        mark = " *" if adjusted[key] < 0.05 else " †" if tests[key]["p"] < 0.05 else ""
        return f"{tests[key]['diff']:+.1f}{mark}"

    lines = [f"difference to the preset (balance coef {PRESET_COEF:g}) (points, same seed and questions; McNemar's exact test; "
             f"† p < 0.05, * Holm-adjusted p < 0.05 over the table's {len(tests)} tests):", "",
             "| scheme | setting | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    for k, r in enumerate(others):
        lines.append(f"| {r['scheme']} | {setting(r)} | " + " | ".join(cell((k, c)) for c in COLUMNS) + " |")
    return "\n".join(lines)
