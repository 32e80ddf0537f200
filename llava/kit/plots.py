"""The scheme comparison as a grouped bar chart: mean per scheme and column, its 95% interval as the error bar."""

from __future__ import annotations

from llava.figures import save_figure, subplots


def plot_comparison(stats: dict[str, dict], path: str) -> None:
    """stats: llava.kit.table.statistics' {column: {"intervals": {scheme: [mean, low, high]}}}."""
    metrics = list(stats)
    schemes = sorted(stats[metrics[0]]["intervals"], key=lambda s: s != "blind")
    width = 0.8 / len(schemes)
    fig, ax = subplots(figsize=(1.5 + 1.4 * len(metrics), 4.5))
    for k, scheme in enumerate(schemes):
        rows = [stats[m]["intervals"][scheme] for m in metrics]
        means = [r[0] for r in rows]
        errors = [[r[0] - r[1] for r in rows], [r[2] - r[0] for r in rows]]
        xs = [i + (k - (len(schemes) - 1) / 2) * width for i in range(len(metrics))]
        style = {"color": "lightgray", "edgecolor": "black", "hatch": "//"} if scheme == "blind" else {}
        ax.bar(xs, means, width, yerr=errors, capsize=2, label=scheme, **style)
    ax.set_xticks(range(len(metrics)), metrics, fontsize=8)
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=min(4, len(schemes)), loc="upper center", bbox_to_anchor=(0.5, -0.08))
    ax.set_title("schemes on the easy-vqa mixture (mean, 95% interval over seeds and questions; hatched: blind)",
                 fontsize=9)
    save_figure(fig, path)
