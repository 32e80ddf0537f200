"""Router load per task: which experts each data task's tokens go to (from gate mass summed during training)."""

from __future__ import annotations

import torch


def load_table(load: torch.Tensor, task_names: list[str], unit: str = "expert") -> str:
    """Markdown table of the share of gate mass per expert (or mixlora factor), one row per task (rows sum to 1)."""
    load = load.detach().float().cpu()
    num_experts = load.shape[1]
    header = "| task | share of mass | " + " | ".join(f"{unit} {e}" for e in range(num_experts)) + " |"
    lines = [header, "|" + "---|" * (num_experts + 2)]
    total = load.sum().clamp_min(1e-12)
    for t in range(load.shape[0]):
        row = load[t]
        mass = row.sum()
        name = task_names[t] if t < len(task_names) else str(t)
        if mass <= 0:
            continue
        shares = " | ".join(f"{v:.3f}" for v in (row / mass).tolist())
        lines.append(f"| {name} | {mass / total:.3f} | {shares} |")
    return "\n".join(lines)
