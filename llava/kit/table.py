"""The comparison table: per scheme and column the mean over seeds with its 95% interval, marks where a scheme
differs from plain LoRA by a paired test (Holm-adjusted over the scheme pairs of the column), and every pair's test.

Input: {scheme: [one {column: {unit: right}} per seed]} (each run's eval/outcomes.json) and the blind baseline's
{column: {unit: right}}; the statistics are llava.kit.stats'.
"""

from __future__ import annotations

from llava.kit.stats import ALPHA, as_array, compare_schemes, interval

COLUMNS = ("colour", "shape", "yes/no", "hex", "caption", "vqg", "pairs acc", "pairs acc+")
REFERENCE = "lora"
BETTER, WORSE = "▲", "▼"


def cells(outcomes: dict[str, list[dict]]) -> dict[str, dict]:
    """{scheme: {column: [seeds, units] array}} over the columns every scheme reports."""
    columns = [c for c in COLUMNS if all(c in run for runs in outcomes.values() for run in runs)]
    return {s: {c: as_array([run[c] for run in runs]) for c in columns} for s, runs in outcomes.items()}


def statistics(outcomes: dict[str, list[dict]], blind: dict[str, dict]) -> dict:
    """JSON-ready {column: {"intervals": {scheme: [mean, low, high]}, "pairs": {"a vs b": test}}}; the blind
    baseline's interval is over questions only (it has no seeds), and it takes no part in the tests."""
    tested = compare_schemes(cells(outcomes))
    out = {}
    for column, result in tested.items():
        intervals = {s: list(v) for s, v in result["intervals"].items()}
        if column in blind:
            intervals["blind"] = list(interval(as_array([blind[column]])))
        out[column] = {"intervals": intervals, "pairs": {f"{a} vs {b}": t for (a, b), t in result["pairs"].items()}}
    return out


def mark(stats: dict, column: str, scheme: str, reference: str = REFERENCE) -> str:
    """▲ / ▼ when `scheme` is significantly above / below `reference` in `column` (Holm-adjusted p < ALPHA)."""
    pairs = stats[column]["pairs"]
    for key, sign in ((f"{reference} vs {scheme}", -1), (f"{scheme} vs {reference}", 1)):
        if key in pairs and pairs[key]["p_holm"] < ALPHA:
            return BETTER if sign * pairs[key]["diff"] > 0 else WORSE
    return ""


def table(stats: dict, counts: dict[str, int], seeds: int) -> str:
    columns = list(stats)
    schemes = sorted(next(iter(stats.values()))["intervals"], key=lambda s: s != "blind")  # blind first
    lines = ["| scheme | adapter weights | seeds | " + " | ".join(columns) + " |",
             "|---|---|---|" + "---|" * len(columns)]
    for scheme in schemes:
        row = []
        for column in columns:
            mean, low, high = stats[column]["intervals"][scheme]
            row.append(f"{mean:.1f} [{low:.1f}, {high:.1f}]{mark(stats, column, scheme) if scheme != 'blind' else ''}")
        weights = f"{counts[scheme]:,}" if scheme in counts else "-"
        lines.append(f"| {scheme} | {weights} | {'-' if scheme == 'blind' else seeds} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def tests_table(stats: dict) -> str:
    """Every scheme pair of every column: the mean difference, its 95% interval, p and Holm's p."""
    lines = []
    for column, result in stats.items():
        lines += [f"### {column}", "", "| a vs b | a - b (points) | 95% interval | p | p (Holm) |", "|---|---|---|---|---|"]
        for pair, t in result["pairs"].items():
            star = " *" if t["p_holm"] < ALPHA else ""
            lines.append(f"| {pair} | {t['diff']:+.1f} | [{t['low']:+.1f}, {t['high']:+.1f}] | {t['p']:.4f} | "
                         f"{t['p_holm']:.4f}{star} |")
        lines.append("")
    return "\n".join(lines)


def summarise(outcomes: dict[str, list[dict]], blind: dict, counts: dict[str, int]) -> tuple[str, str, dict]:
    """(markdown table, markdown pairwise tests, statistics) for `make compare`."""
    stats = statistics(outcomes, blind)
    seeds = len(next(iter(outcomes.values())))
    legend = (f"mean over {seeds} seeds [95% bootstrap interval over seeds and questions]; {BETTER} / {WORSE}: above / "
              f"below {REFERENCE} by a paired bootstrap test, Holm-adjusted over the scheme pairs of the column, "
              f"p < {ALPHA}")
    return table(stats, counts, seeds) + "\n\n" + legend, tests_table(stats), stats
