"""Router health for the experiment trackers: is each layer's router learning, or stuck where it started?

A routed run can train to a good loss while its routers stay near uniform or collapse onto one expert, and the loss
curve does not show it. At every logging step, for each transformer layer with routers, the trackers (tensorboard,
wandb; `--report_to`) get:

* `router_health/layerL/load/expertE`: share of gate mass on expert E since the last log (all tasks);
* `router_health/layerL/gate_entropy`: mean per-token entropy of the gates over log(E): 1 uniform, 0 one expert;
* `router_health/layerL/weight_change`: ||W - W_start|| / ||W_start|| over the layer's router weights (fp32 masters);
  ||W|| where they started at zero (`--router_init zero`);
* `router_health/layerL/grad_norm`: norm of the layer's router gradient in the last optimizer step (averaged over
  ranks, before clipping);
* `router_health/layerL/load/TASK/expertE`: the same per data task;
* `router_health/layerL/task_mi_bits`: mutual information between the data task and each token's top expert since
  the last log (llava.adapters.state.mutual_information, the kit's router-specialisation measure): 0 when every task
  picks the experts alike, log2(min(tasks, E)) when the top expert names the task; `router_health/task_mi_bits/mean`
  and `/max` over the layers;
* `router_health/load/TASK/expertE`: per data task, the share of gate mass on expert E since the last log.

They go to the trackers only, not into trainer_state.json's log history (hundreds of scalars per step at 7B).
Nothing here runs unless a tracker is on. Under DeepSpeed the fp32 weights are read with DeepSpeed's public
`safe_get_full_fp32_param` (a collective: every rank logs, in the same order).
"""

from __future__ import annotations

import math
import re

import torch
from transformers import TrainerCallback

from llava.adapters.routing import is_router_parameter
from llava.adapters.state import mutual_information

PREFIX = "router_health/"


def router_parameters_by_layer(model) -> dict[int, list[tuple[str, torch.nn.Parameter]]]:
    """Trainable router parameters (routers, mixlora's router_cfs) grouped by the `.layers.N.` in their names."""
    groups: dict[int, list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad or not is_router_parameter(name):
            continue
        match = re.search(r"\.layers\.(\d+)\.", f".{name}.")
        if match:
            groups.setdefault(int(match.group(1)), []).append((name, p))
    return dict(sorted(groups.items()))


class RouterHealth(TrainerCallback):
    def __init__(self, model, state, task_names: list[str], unit: str, reduce_sum, deepspeed: bool):
        self.state, self.task_names, self.unit = state, task_names, unit
        self.reduce_sum = reduce_sum  # sums a tensor over ranks (identity on one process)
        self.deepspeed = deepspeed
        self.layers = router_parameters_by_layer(model)
        self.start: dict[str, torch.Tensor] = {}
        self._grad: dict[str, torch.Tensor] = {}  # router gradients summed over this step's micro-steps
        self._grad_sq: dict[int, torch.Tensor] = {}  # per layer, squared norm of the last logged step's gradient
        self._last_load: dict[int, torch.Tensor] = {}
        self._last_task_load: torch.Tensor | None = None
        self._last_entropy: dict[int, torch.Tensor] = {}
        self._last_top: dict[int, torch.Tensor] = {}
        state.count_top_experts()  # for the task-expert mutual information
        self._handles = [p.register_hook(self._grad_hook(name)) for group in self.layers.values()
                         for name, p in group]

    def _grad_hook(self, name: str):
        def hook(grad):
            g = grad.detach().float()
            self._grad[name] = g if name not in self._grad else self._grad[name] + g
            return grad
        return hook

    def _full_weight(self, p: torch.nn.Parameter) -> torch.Tensor | None:
        if self.deepspeed:
            from deepspeed.utils import safe_get_full_fp32_param

            full = safe_get_full_fp32_param(p)
            return None if full is None else full.detach().float()
        return p.detach().float()

    # --- TrainerCallback ---------------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        for group in self.layers.values():
            for name, p in group:
                weight = self._full_weight(p)
                if weight is not None:
                    self.start[name] = weight.clone()

    def on_step_end(self, args, state, control, **kwargs):
        """After each optimizer step: keep the step's gradient norms if this step is logged (the same decision on
        every rank, so the all-reduce lines up), then start the next step's sums."""
        if control.should_log and self._grad:
            names = [name for group in self.layers.values() for name, _ in group if name in self._grad]
            flat = torch.cat([self._grad[n].reshape(-1) for n in names])
            flat = self.reduce_sum(flat) / max(1, args.world_size)
            offset, sizes = 0, {}
            for n in names:
                sizes[n] = (offset, offset + self._grad[n].numel())
                offset += self._grad[n].numel()
            self._grad_sq = {layer: sum((flat[slice(*sizes[n])].pow(2).sum() for n, _ in group if n in sizes),
                                        torch.zeros((), device=flat.device))
                             for layer, group in self.layers.items()}
        self._grad = {}

    # --- the scalars -------------------------------------------------------------------------------------------
    def _windows(self) -> tuple[list[int], dict[str, dict], torch.Tensor | None]:
        """What each running sum gained since the previous log, summed over ranks (one all-reduce): per layer the
        [tasks, E] gate mass ("load"), the [entropy, tokens] pair and the [tasks, E] top-expert counts; and the
        [tasks, E] gate mass over all layers."""
        state = self.state
        layers = sorted(set(state.layer_load) | set(self.layers))
        tables = {"load": (self._last_load, state.layer_load), "entropy": (self._last_entropy, state.layer_entropy),
                  "top": (self._last_top, state.layer_top or {})}
        windows = {kind: {layer: self._window(last, layer, totals.get(layer)) for layer in layers}
                   for kind, (last, totals) in tables.items()}
        task_load = None
        if state.load is not None:
            previous = self._last_task_load if self._last_task_load is not None else torch.zeros_like(state.load)
            task_load = state.load.detach().float() - previous.to(state.load.device)
            self._last_task_load = state.load.detach().float().clone()
        parts = [t for table in windows.values() for t in table.values() if t is not None]
        parts += [task_load] if task_load is not None else []
        if parts:
            device = parts[0].device
            flat = self.reduce_sum(torch.cat([t.reshape(-1).to(device) for t in parts]))
            offset = 0
            for table in windows.values():
                for layer, t in table.items():
                    if t is not None:
                        table[layer] = flat[offset:offset + t.numel()].reshape(t.shape)
                        offset += t.numel()
            if task_load is not None:
                task_load = flat[offset:offset + task_load.numel()].reshape(task_load.shape)
        return layers, windows, task_load

    def scalars(self) -> dict[str, float]:
        """The scalars of this logging step (every rank calls this; rank 0's trackers write them)."""
        out: dict[str, float] = {}
        layers, windows, task_load = self._windows()
        mi = []
        for layer in layers:
            key = f"{PREFIX}layer{layer}/"
            load = windows["load"][layer]
            if load is not None and load.sum() > 0:
                per_expert = load.sum(0)
                out.update({f"{key}load/{self.unit}{e}": v for e, v in enumerate((per_expert / per_expert.sum())
                                                                                    .tolist())})
                out.update(self._per_task(f"{key}load/", load))
                ent = windows["entropy"][layer]
                if ent is not None and ent[1] > 0:
                    out[f"{key}gate_entropy"] = float(ent[0] / ent[1]) / math.log(max(2, load.shape[1]))
            top = windows["top"][layer]
            if top is not None and int((top.sum(1) > 0).sum()) >= 2:  # a task split needs two tasks in the window
                mi.append(mutual_information(top))
                out[f"{key}task_mi_bits"] = mi[-1]
            change = self._weight_change(self.layers.get(layer, []))
            if change is not None:
                out[f"{key}weight_change"] = change
            if layer in self._grad_sq:
                out[f"{key}grad_norm"] = float(self._grad_sq[layer].sqrt())
        if mi:
            out[f"{PREFIX}task_mi_bits/mean"] = sum(mi) / len(mi)
            out[f"{PREFIX}task_mi_bits/max"] = max(mi)
        if task_load is not None:
            out.update(self._per_task(f"{PREFIX}load/", task_load))
        return {k: round(v, 6) for k, v in out.items()}

    def _per_task(self, prefix: str, load: torch.Tensor) -> dict[str, float]:
        """PREFIX/TASK/expertE: each task's share of its gate mass per expert."""
        out = {}
        for t, row in enumerate(load):
            if row.sum() > 0:
                name = self.task_names[t] if t < len(self.task_names) else str(t)
                out.update({f"{prefix}{name}/{self.unit}{e}": v for e, v in enumerate((row / row.sum()).tolist())})
        return out

    @staticmethod
    def _window(last: dict, layer: int, total: torch.Tensor | None) -> torch.Tensor | None:
        """What `total` (a running sum) gained since the previous log."""
        if total is None:
            return None
        total = total.detach().float()
        previous = last.get(layer)
        last[layer] = total.clone()
        return total if previous is None else total - previous.to(total.device)

    def _weight_change(self, group) -> float | None:
        moved, size, counted = 0.0, 0.0, 0
        for name, p in group:
            weight = self._full_weight(p)  # collective under DeepSpeed: called for every parameter on every rank
            if weight is None or name not in self.start:
                continue
            counted += 1
            start = self.start[name].to(weight.device)
            moved += float((weight - start).pow(2).sum())
            size += float(start.pow(2).sum())
        if not counted:
            return None
        return math.sqrt(moved / size) if size > 0 else math.sqrt(moved)  # started at zero: how far from zero

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
