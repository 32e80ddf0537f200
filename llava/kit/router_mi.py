"""What `make compare` reports of each routed scheme's routers: did they split the data tasks while training?

Every compare run logs router health to tensorboard (llava/train/router_health.py). This reads, per run, the last
logged window's task-expert mutual information per routed layer (bits; 0 when every task picks the experts alike,
log2(min(tasks, experts)) when the top expert names the task) and tabulates per scheme: the mean over layers, the
largest layer, and how many layers reach SPECIALISED bits (the router-specialisation issue's bar: a third of the
routed layers at 0.5 bits or more). Schemes without routers (lora, task heads) have no row.
"""

from __future__ import annotations

import importlib.util
import os
import re

from llava.train.plots import read_router_health

SPECIALISED = 0.5  # bits


def report_to() -> str:
    """`--report_to` of the kit's runs (compare, demo): tensorboard where installed, so router health is logged."""
    return "tensorboard" if importlib.util.find_spec("tensorboard") else "none"


def run_mutual_information(run_dir: str) -> dict | None:
    """{"layers": {layer: bits}, "mean", "max", "specialised_layers", "step"} at a run's last logged window, or None
    for a run that logged no task-expert mutual information (no routers, or no tracker)."""
    series = read_router_health(os.path.join(run_dir, "runs"))
    layers = {int(m[1]): points for name, points in series.items()
              if (m := re.fullmatch(r"layer(\d+)/task_mi_bits", name))}
    if not layers:
        return None
    by_step = {layer: dict(points) for layer, points in sorted(layers.items())}
    step = max(s for points in by_step.values() for s in points)
    last = {layer: points[step] for layer, points in by_step.items() if step in points}
    values = list(last.values())
    return {"step": step, "layers": last, "mean": sum(values) / len(values), "max": max(values),
            "specialised_layers": sum(v >= SPECIALISED for v in values)}


def mutual_information_table(runs: dict[str, list[dict | None]]) -> str:
    """Markdown: one row per scheme whose runs logged routers, each seed's mean / max bits and specialised layers."""
    lines = ["| scheme | mean over layers (bits), per seed | largest layer (bits), per seed | "
             f"layers at >= {SPECIALISED} bits, per seed |", "|---|---|---|---|"]
    for scheme, per_seed in runs.items():
        if not any(per_seed):
            continue
        cells = [" / ".join("-" if r is None else fmt(r) for r in per_seed)
                 for fmt in (lambda r: f"{r['mean']:.3f}", lambda r: f"{r['max']:.3f}",
                             lambda r: f"{r['specialised_layers']} of {len(r['layers'])}")]
        lines.append(f"| {scheme} | " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""
