"""What a run's routers did while training, read back from its tensorboard events (the Trainer's router-health logs):
whether their gradients are too small to move them, and how far they moved. The router study reports it beside the
mutual information, so "the routers stay uniform" can be told apart from "the routers never learn"."""

from __future__ import annotations

import glob
import os
import re
import statistics

LAYER = re.compile(r"^train/router_health/layer(\d+)/(grad_norm|weight_change)$")


def router_training(run: str) -> dict | None:
    """{grad_share_mean, grad_share_min, grad_share_max, weight_change_median}: at each logged step, the norm of every
    router's gradient together (all layers) over the whole model's (`train/grad_norm`), its mean, min and max over the
    steps; and the median over layers of the routers' last logged weight change (relative to their starting norm).
    None where the run logged no router health to tensorboard."""
    files = sorted(glob.glob(os.path.join(run, "runs", "*", "events.out.tfevents.*")))
    if not files:
        return None
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return None  # the tensorboard extra is not installed: the study reports the rest
    events = EventAccumulator(files[-1], size_guidance={"scalars": 0})
    events.Reload()
    tags = events.Tags()["scalars"]
    if "train/grad_norm" not in tags:
        return None
    total = {e.step: e.value for e in events.Scalars("train/grad_norm")}
    squares, changes = {}, {}  # step -> sum over layers of the routers' squared gradient norm; layer -> last change
    for tag in tags:
        match = LAYER.match(tag)
        if not match:
            continue
        values = events.Scalars(tag)
        if match.group(2) == "grad_norm":
            for e in values:
                squares[e.step] = squares.get(e.step, 0.0) + e.value**2
        elif values:
            changes[int(match.group(1))] = values[-1].value
    shares = [squares[step] ** 0.5 / total[step] for step in squares if total.get(step)]
    if not shares or not changes:
        return None
    return {"grad_share_mean": sum(shares) / len(shares), "grad_share_min": min(shares),
            "grad_share_max": max(shares), "weight_change_median": statistics.median(changes.values())}
