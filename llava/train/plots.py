"""The two pictures people look at after a run: the loss curve and the router load per task.

`OUTPUT/plots/loss.png`: LM loss and balance loss against the optimizer step (from the Trainer's log history).
`OUTPUT/plots/router_load.png`: the task x expert share of gate mass, over all routed layers and per layer.
"""

from __future__ import annotations

import math
import os

import torch
from matplotlib.figure import Figure

from llava.adapters.state import load_shares


def subplots(*args, figsize=None, **kwargs):
    """A figure and its axes outside pyplot: files only, and no backend chosen or changed (a notebook that imports
    this package keeps its own)."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


def plot_losses(log_history: list[dict], path: str) -> bool:
    """Written only when the run logged at least one training loss."""
    rows = [h for h in log_history if "loss" in h and "step" in h]
    if not rows:
        return False
    steps = [h["step"] for h in rows]
    fig, ax = subplots(figsize=(7, 4))
    ax.plot(steps, [h.get("lm_loss", h["loss"]) for h in rows], marker=".", label="LM loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("LM loss")
    ax.grid(alpha=0.3)
    if any(h.get("balance_loss") for h in rows):
        right = ax.twinx()  # a balance loss near 1 beside an LM loss near 5: its own axis
        right.plot(steps, [h.get("balance_loss", 0.0) for h in rows], color="tab:orange", marker=".",
                   label="balance loss")
        right.set_ylabel("balance loss (before coef)")
        fig.legend(loc="upper right")
    else:
        ax.legend(loc="upper right")
    ax.set_title("training loss")
    save_figure(fig, path)
    return True


def plot_router_load(total: torch.Tensor, per_layer: dict[int, torch.Tensor], task_names: list[str], unit: str,
                     path: str) -> None:
    """Heatmaps of load_shares: first all routed layers together, then one per layer."""
    panels = [("all layers", total)] + [(f"layer {k}", per_layer[k]) for k in sorted(per_layer)]
    cols = min(len(panels), 4)
    rows = math.ceil(len(panels) / cols)
    num_tasks, num_experts = total.shape
    fig, axes = subplots(rows, cols, figsize=(1.2 + cols * (0.6 * num_experts + 1.5), rows * (0.45 * num_tasks + 1.4)),
                             squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, (title, load) in zip(axes.flat, panels):
        shares = load_shares(load)
        image = ax.imshow(shares.numpy(), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_title(title, fontsize=9)
        ax.set_xticks(range(num_experts), [f"{unit[0]}{e}" for e in range(num_experts)], fontsize=7)
        ax.set_yticks(range(num_tasks), task_names[:num_tasks], fontsize=7)
        if num_tasks * num_experts <= 48:
            for t in range(num_tasks):
                for e in range(num_experts):
                    value = shares[t, e].item()
                    ax.text(e, t, f"{value:.2f}", ha="center", va="center", fontsize=6,
                            color="black" if value > 0.6 else "white")
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label=f"share of the task's gate mass per {unit}")
    # just above the top row's titles: at a fixed figure fraction a tall (many-layer) figure gets a blank band on top
    top = max(ax.get_position().y1 for ax in axes.flat)
    fig.suptitle(f"router load per task (rows sum to 1; uniform = {1 / num_experts:.2f})", fontsize=10,
                 y=top + 0.45 / fig.get_figheight(), va="bottom")
    save_figure(fig, path)


def save_figure(fig, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)
