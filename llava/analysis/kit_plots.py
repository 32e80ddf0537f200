"""The scheme comparison as a grouped bar chart: mean per scheme and metric, std over seeds as error bars."""

from __future__ import annotations

from llava.train.plots import plt, save_figure


def plot_comparison(table: dict[str, dict[str, tuple[float, float]]], path: str) -> None:
    schemes = list(table)
    metrics = list(next(iter(table.values())))
    width = 0.8 / len(schemes)
    fig, ax = plt.subplots(figsize=(1.5 + 1.4 * len(metrics), 4.5))
    for k, scheme in enumerate(schemes):
        means = [table[scheme][m][0] for m in metrics]
        stds = [table[scheme][m][1] for m in metrics]
        xs = [i + (k - (len(schemes) - 1) / 2) * width for i in range(len(metrics))]
        style = {"color": "lightgray", "edgecolor": "black", "hatch": "//"} if scheme == "blind" else {}
        ax.bar(xs, means, width, yerr=stds, capsize=2, label=scheme, **style)
    ax.set_xticks(range(len(metrics)), metrics, fontsize=8)
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=min(4, len(schemes)), loc="upper center", bbox_to_anchor=(0.5, -0.08))
    ax.set_title("schemes on the easy-vqa mixture (mean +- std over seeds; hatched: blind baseline)", fontsize=9)
    save_figure(fig, path)
