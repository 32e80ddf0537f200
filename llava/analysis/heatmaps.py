"""The interference heatmaps (A and B side by side), drawn as MixLoRA's Fig. 2: red helps, blue hurts."""

from __future__ import annotations

import torch

from llava.figures import save_figure, subplots


def plot_interference(scores: dict[str, torch.Tensor], task_names: list[str], path: str, title: str) -> None:
    limit = max(float(s.abs().max()) for s in scores.values()) or 1.0
    n = len(task_names)
    fig, axes = subplots(1, len(scores), figsize=(1.5 + len(scores) * (0.8 * n + 2.2), 0.7 * n + 1.6),
                             squeeze=False, gridspec_kw={"wspace": 0.45})
    for ax, (matrix, values) in zip(axes.flat, scores.items()):
        image = ax.imshow(values.numpy(), vmin=-limit, vmax=limit, cmap="coolwarm", aspect="auto")
        ax.set_title(f"{matrix} matrices", fontsize=9)
        ax.set_xticks(range(n), task_names, fontsize=7, rotation=30)
        ax.set_yticks(range(n), task_names, fontsize=7)
        ax.set_xlabel("task stepped on (j)", fontsize=8)
        ax.set_ylabel("task measured (i)", fontsize=8)
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{values[i, j].item():+.2g}", ha="center", va="center", fontsize=6)  # any scale
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="relative loss decrease of i after a step on j")
    fig.suptitle(title, fontsize=10, y=1.04)
    save_figure(fig, path)
