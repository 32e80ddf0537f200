"""The pictures people look at after a run: the loss curve, the router load per task and the routers' health.

`OUTPUT/plots/loss.png`: LM loss and balance loss against the optimizer step (from the Trainer's log history).
`OUTPUT/plots/router_load.png`: the task x expert share of gate mass, over all routed layers and per layer.
`OUTPUT/plots/router_health.png`: per layer, gate entropy, router weight change and gradient norm against the step,
and the load per expert at the end (from the run's tensorboard events; train/router_health.py logs them).
"""

from __future__ import annotations

import math
import os

import torch

from llava.adapters.state import load_shares
from llava.figures import save_figure, subplots


def plot_losses(log_history: list[dict], path: str) -> bool:
    """Written only when the run logged at least one training loss."""
    rows = [h for h in log_history if "loss" in h and "step" in h]
    if not rows:
        return False
    steps = [h["step"] for h in rows]
    fig, ax = subplots(figsize=(7, 4), layout=None)
    fig.subplots_adjust(left=0.1, right=0.88, bottom=0.12, top=0.92)
    lines = ax.plot(steps, [h.get("lm_loss", h["loss"]) for h in rows], marker=".", label="LM loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("LM loss")
    ax.grid(alpha=0.3)
    if any(h.get("balance_loss") for h in rows):
        right = ax.twinx()  # a balance loss near 1 beside an LM loss near 5: its own axis
        lines += right.plot(steps, [h.get("balance_loss", 0.0) for h in rows], color="tab:orange", marker=".",
                            label="balance loss")
        right.set_ylabel("balance loss (before coef)")
    ax.legend(handles=lines, loc="lower right", bbox_to_anchor=(1, 1), ncols=2, fontsize=8, frameon=False)
    ax.set_title("training loss", loc="left")
    save_figure(fig, path)
    return True


def plot_router_load(total: torch.Tensor, per_layer: dict[int, torch.Tensor], task_names: list[str], unit: str,
                     path: str) -> None:
    """Heatmaps of load_shares: first all routed layers together, then one per layer."""
    panels = [("all layers", total)] + [(f"layer {k}", per_layer[k]) for k in sorted(per_layer)]
    cols = min(len(panels), 4)
    rows = math.ceil(len(panels) / cols)
    num_tasks, num_experts = total.shape
    width, height = 1.2 + cols * (0.6 * num_experts + 1.5), rows * (0.45 * num_tasks + 1.4)
    fig, axes = subplots(rows, cols, figsize=(width, height), squeeze=False, layout=None)
    # inches for the task names on the left, the titles above, the expert names below
    fig.subplots_adjust(left=0.8 / width, right=0.97, bottom=0.35 / height, top=1 - 0.7 / height,
                        wspace=0.6, hspace=0.7)
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
    bar = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.9, pad=0.03)
    bar.set_label(f"share of the task's gate mass per {unit}", fontsize=7)
    fig.suptitle(f"router load per task (rows sum to 1; uniform = {1 / num_experts:.2f})", fontsize=10)
    save_figure(fig, path)


def read_router_health(events_dir: str) -> dict[str, list[tuple[int, float]]]:
    """The router_health/ scalars of a run's tensorboard event files (under OUTPUT/runs), by name without prefix."""
    import glob

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(glob.glob(os.path.join(events_dir, "**", "events.out.tfevents.*"), recursive=True)):
        events = EventAccumulator(path, size_guidance={"scalars": 0})  # 0: every point, not a sample
        events.Reload()
        for tag in events.Tags()["scalars"]:
            if "router_health/" in tag:
                name = tag.split("router_health/", 1)[1]
                series.setdefault(name, []).extend((e.step, e.value) for e in events.Scalars(tag))
    return series


def plot_router_health(events_dir: str, path: str) -> bool:
    """Four panels, one line per routed layer (colour = depth): gate entropy / log E, ||W - W0|| / ||W0|| of the
    routers, their gradient norm, and each layer's final load per expert. Written when the events hold any."""
    series = read_router_health(events_dir)
    layers = sorted({int(k.split("/")[0][5:]) for k in series if k.startswith("layer")})
    if not layers:
        return False
    import matplotlib

    colour = matplotlib.colormaps["viridis"]
    fig, axes = subplots(2, 2, figsize=(11, 7), layout=None)
    fig.subplots_adjust(left=0.07, right=0.97, bottom=0.08, top=0.9, wspace=0.25, hspace=0.35)
    panels = [("gate_entropy", "gate entropy / log E (1: uniform, 0: one expert)", "linear"),
              ("weight_change", "router weight change ||W - W0|| / ||W0||", "linear"),
              ("grad_norm", "router gradient norm (per step, before clipping)", "log")]
    for ax, (name, title, scale) in zip(axes.flat, panels):
        for i, layer in enumerate(layers):
            points = sorted(series.get(f"layer{layer}/{name}", []))
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], color=colour(i / max(1, len(layers) - 1)),
                        linewidth=1)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("optimizer step", fontsize=8)
        ax.set_yscale(scale)
        ax.grid(alpha=0.3)
    experts = sorted({k.rsplit("/", 1)[1] for k in series if "/load/" in k and k.startswith("layer")})
    final = [[sorted(series.get(f"layer{layer}/load/{e}", [(0, float("nan"))]))[-1][1] for e in experts]
             for layer in layers]
    ax = axes.flat[3]
    image = ax.imshow(torch.tensor(final).T.numpy(), vmin=0, vmax=1, cmap="magma", aspect="auto")
    ax.set_yticks(range(len(experts)), experts, fontsize=7)
    ax.set_xticks(range(len(layers)), [str(k) for k in layers], fontsize=6)
    ax.set_xlabel("layer", fontsize=8)
    ax.set_title(f"load per expert at the last log (uniform = {1 / max(1, len(experts)):.2f})", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    norm = matplotlib.colors.Normalize(vmin=layers[0], vmax=layers[-1])
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=colour), ax=list(axes[0]), shrink=0.8,
                 label="layer (line colour)")
    fig.suptitle("router health", fontsize=11)
    save_figure(fig, path)
    return True
