"""Per-batch routing state shared by every adapter layer of one model.

Layers cannot receive extra forward arguments through LlavaForConditionalGeneration, so the batch's task ids and
token mask live here, set by the trainer or the generator before the forward (`adapter_batch`). The state also
holds the balance loss's records (`balance.py`) and the router load per task (for the end-of-training report).
"""

from __future__ import annotations

import torch

from llava.adapters.balance import BalanceLoss, onehot
from llava.adapters.packed import PackedSamples, sample_sums
from llava.adapters.z_loss import RouterZLoss
from llava.constants import IGNORE_INDEX


class RoutingState:
    def __init__(self, balance_loss: str = "hydra"):
        self.task_ids: torch.Tensor | None = None  # [batch] long: one per sample
        self.packed: PackedSamples | None = None  # several samples per row (padding-free training); None: one per row
        self.task_onehots: dict = {}  # the batch's task one-hots, built once for every adapted linear (task_onehot)
        self.token_mask: torch.Tensor | None = None  # [batch, seq] bool: tokens that count for balance and load
        # [batch, seq] bool: the tokens a mixlora instance is read from: the prompt, which is all a model has at
        # inference; in training the reply's tokens are left out, or routing would see the answer it is to predict
        self.instance_mask: torch.Tensor | None = None
        self.aux_grad_scale: float = 0.0  # d(total loss)/d(balance loss): balance_coef / gradient-accumulation steps
        self.balance = BalanceLoss(balance_loss)
        self.z_grad_scale: float = 0.0  # d(total loss)/d(router z-loss): router_z_loss_coef / accumulation steps
        self.z_loss = RouterZLoss()
        self.z_value: torch.Tensor | None = None  # the last training forward's z-loss (finish_forward)
        self.load: torch.Tensor | None = None  # [num_data_tasks, E] summed gate mass; None: not tracked
        self.layer_load: dict[int, torch.Tensor] = {}  # the same per transformer layer (Router.load_layer)
        self.layer_entropy: dict[int, torch.Tensor] = {}  # per layer: [sum of per-token gate entropy (nats), tokens]
        self.layer_top: dict[int, torch.Tensor] | None = None  # per layer, tokens whose top expert is e: [T, E]
        self.instance_selection: dict[int, torch.Tensor] = {}  # mixlora: per-layer selection of this batch
        self.sample_gates: dict[int, tuple] = {}  # router_input="prompt": per router, this batch's (gates, probs)
        self.trace = None  # a RoutingTrace while serving records what the routers did (trace.py)

    def begin_batch(self, task_ids=None, token_mask=None, labels=None, packed: PackedSamples | None = None) -> None:
        """labels (training): the supervised tokens (label != IGNORE_INDEX) are dropped from the instance mask.
        packed: which sample each token is, for a batch packed along the sequence."""
        self.task_ids = task_ids
        self.packed = packed
        self.task_onehots = {}
        self.token_mask = token_mask.bool() if token_mask is not None else None
        self.instance_mask = self.token_mask
        if labels is not None:
            prompt = labels == IGNORE_INDEX
            self.instance_mask = prompt if self.token_mask is None else self.token_mask & prompt
        self.balance.begin()
        self.z_loss.begin()
        self.instance_selection = {}
        self.sample_gates = {}

    def finish_forward(self) -> torch.Tensor | None:
        """The balance loss of the forward that just ran (detached, before balance_coef), or None without routers;
        the router z-loss goes to `z_value`. Call once after every training forward and before its backward: it
        fixes the gradients backward applies."""
        self.z_value = self.z_loss.finish()
        return self.balance.finish()

    def mask_for(self, x: torch.Tensor, instance: bool = False) -> torch.Tensor | None:
        """The token (or instance) mask if it lines up with x's [batch, seq] (it does not during cached decoding)."""
        m = self.instance_mask if instance else self.token_mask
        if m is None or x.dim() != 3 or m.shape != x.shape[:2]:
            return None
        return m.to(x.device)

    def packed_for(self, x: torch.Tensor) -> PackedSamples | None:
        """The batch's packing if it lines up with x's [rows, seq]."""
        return self.packed if self.packed is not None and self.packed.lines_up(x) else None

    def start_load_tracking(self, num_tasks: int, num_experts: int, top_counts: bool = False) -> None:
        """top_counts: also count each token's top expert per layer (the task-expert mutual information's input;
        training pays it only when router health goes to a tracker: `count_top_experts`)."""
        self.load = torch.zeros(num_tasks, num_experts)
        self.layer_load = {}
        self.layer_entropy = {}
        self.layer_top = {} if top_counts else None

    def count_top_experts(self) -> None:
        if self.layer_top is None:
            self.layer_top = {}

    def record_load(self, gates: torch.Tensor, layer: int | None = None) -> None:
        """Add gate mass per (data task, expert), in total and for `layer`; gates is [batch, seq, E]. No host sync.
        A serving trace (trace.py), when set, gets the gates too."""
        if self.trace is not None:
            self.trace.add(layer, gates)
        if self.load is None or self.task_ids is None or gates.dim() != 3 or self.load.shape[1] != gates.shape[-1]:
            return
        if self.load.device != gates.device:
            self.load = self.load.to(gates.device)
        mask = self.mask_for(gates)
        g = gates.detach().float()
        if mask is not None:
            g = g * mask.unsqueeze(-1)
        packed = self.packed_for(gates)
        tasks, mass = self.task_ids.to(gates.device), sample_sums(g, packed)
        self.load.index_add_(0, tasks, mass)
        if layer is not None:
            if layer not in self.layer_load:
                self.layer_load[layer] = torch.zeros_like(self.load)
            self.layer_load[layer].index_add_(0, tasks, mass)
            entropy = -(g * g.clamp_min(1e-12).log()).sum(-1)  # masked tokens have g = 0: entropy 0
            tokens = mask.sum() if mask is not None else torch.tensor(float(entropy.numel()), device=g.device)
            step = torch.stack([entropy.sum(), tokens.float()])
            if layer in self.layer_entropy:
                self.layer_entropy[layer] += step
            else:
                self.layer_entropy[layer] = step
            if self.layer_top is not None:
                top = onehot(g.argmax(-1), g.shape[-1], torch.float32)
                if mask is not None:
                    top = top * mask.unsqueeze(-1)
                top = sample_sums(top, packed)
                self.layer_top.setdefault(layer, torch.zeros_like(self.load)).index_add_(0, tasks, top)


def mutual_information(counts: torch.Tensor) -> float:
    """MI in bits between task (rows, weighted equally) and expert (columns) of a [T, E] table of top-expert counts:
    sum_t,e p(t) p(e|t) log2(p(e|t) / p(e)), p(t) = 1/T over the tasks seen, p(e) = mean_t p(e|t). 0 when every
    task picks the experts alike, log2(min(T, E)) when the top expert names the task."""
    rows = counts.detach().double().cpu()
    rows = rows[rows.sum(1) > 0]
    if len(rows) == 0:
        return 0.0
    p_e_t = rows / rows.sum(1, keepdim=True)
    p_e = p_e_t.mean(0)
    ratio = torch.where(p_e_t > 0, p_e_t / p_e.clamp_min(1e-300), torch.ones_like(p_e_t))
    return float((p_e_t * ratio.log2()).sum() / len(rows))


def load_shares(load: torch.Tensor) -> torch.Tensor:
    """Rows of a [tasks, E] load as shares (each task's row sums to 1; a task never seen stays 0)."""
    load = load.detach().float().cpu()
    return load / load.sum(1, keepdim=True).clamp_min(1e-12)


def load_table(load: torch.Tensor, task_names: list[str], unit: str = "expert") -> str:
    """Markdown table of RoutingState.load: per data task, the share of gate mass on each expert (or mixlora
    factor); rows sum to 1. "share of mass" is the task's part of all routed mass."""
    load = load.detach().float().cpu()
    num_experts = load.shape[1]
    lines = ["| task | share of mass | " + " | ".join(f"{unit} {e}" for e in range(num_experts)) + " |",
             "|" + "---|" * (num_experts + 2)]
    total = load.sum().clamp_min(1e-12)
    for t, row in enumerate(load):
        mass = row.sum()
        if mass <= 0:
            continue
        name = task_names[t] if t < len(task_names) else str(t)
        lines.append(f"| {name} | {mass / total:.3f} | " + " | ".join(f"{v:.3f}" for v in (row / mass).tolist()) + " |")
    return "\n".join(lines)


class AttachAux(torch.autograd.Function):
    """Identity on `out`; in backward, also sends an auxiliary loss's gradient to a router's statistic `stat`.

    Attaching the statistic to a layer output (instead of adding a loss to the final one) is what lets it reach the
    router under reentrant gradient checkpointing, whose first forward runs without autograd: the recomputed forward
    rebuilds this node, and backward through it reaches the router. The gradient is read from the loss (BalanceLoss,
    RouterZLoss) at backward time, when the whole forward's statistics are known, times `scale` (its coefficient
    over the gradient-accumulation steps).
    """

    @staticmethod
    def forward(ctx, out, stat, loss, key: int, scale: float):
        ctx.loss, ctx.key, ctx.scale = loss, key, scale
        ctx.save_for_backward(stat.detach())
        return out.view_as(out)

    @staticmethod
    def backward(ctx, grad_out):
        (stat,) = ctx.saved_tensors
        return grad_out, ctx.loss.grad_for(ctx.key, stat) * ctx.scale, None, None, None
