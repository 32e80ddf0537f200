"""Load-balancing losses for routed adapters, and the bookkeeping that makes their gradient exact.

Two kinds (`AdapterConfig.balance_loss`):

hydra   the AsymLoRA authors' loss (their llava_llama.py). Per sample s, over ALL routed layers l = 1..L and the
        sample's attended tokens: P[s,e] = mean router probability of expert e, H[s,e] = mean top-1 one-hot
        (no gradient); loss_s = sum_e P[s,e] H[s,e]; loss = mean over the batch's samples.
switch  Switch Transformer's loss per router, averaged over routers: E * sum_e f_e P_e, f_e = share of the batch's
        counted tokens whose top expert is e (no gradient), P_e = their mean probability of e.

The balance loss is multiplied by `balance_coef` (and divided by the gradient-accumulation steps) by the trainer.

Why this is not a term added to the LM loss: reentrant gradient checkpointing runs the first forward without
autograd, so a loss collected during it has no graph. Each router instead records its statistics while the
forward runs and attaches a node to its output (`AttachAux`) whose backward asks this object for d(loss)/d(stat):
the value that is logged (`finish`) and the gradient that is applied come from the same records, so they always
agree, checkpointing or not. Both kinds hold for data parallelism: N processes x b samples give the value and
gradient of 1 process x N*b samples (hydra is a mean over samples; switch all-reduces its counts across ranks
once per forward, in `finish`, after which every rank's gradient is scaled by the world size that the gradient
averaging divides out).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from llava.adapters.packed import PackedSamples, sample_sums
from llava.adapters.recorded_loss import RecordedLoss

KINDS = ("hydra", "switch")


def onehot(index: torch.Tensor, classes: int, dtype: torch.dtype) -> torch.Tensor:
    """F.one_hot without its range check, which reads the indices back to the host (a device sync per router)."""
    return torch.zeros(*index.shape, classes, dtype=dtype, device=index.device).scatter_(-1, index.unsqueeze(-1), 1)


def _dp_world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class BalanceLoss(RecordedLoss):
    what = "balance-loss"

    def __init__(self, kind: str = "hydra"):
        if kind not in KINDS:
            raise ValueError(f"balance_loss must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.begin()

    def begin(self) -> None:
        super().begin()
        self.prob_stats: list[torch.Tensor] = []  # detached copies of what each router attaches
        self.top_stats: list[torch.Tensor] = []
        self.counts: list[torch.Tensor] = []

    def record(self, key: int, probs: torch.Tensor, gates: torch.Tensor, mask: torch.Tensor | None,
               packed: PackedSamples | None = None) -> torch.Tensor:
        """Statistics of one router for this forward; returns the tensor (with grad) to attach to its output.

        probs/gates: [..., E] float (full softmax / the gates used); mask: [batch, seq] of counted tokens or None;
        packed: the samples of a packed batch (hydra's statistics are per sample).
        A recomputation during backward (gradient checkpointing) returns the statistic without recording it again.
        """
        num_experts = probs.shape[-1]
        if probs.dim() == 2:
            probs, gates = probs.unsqueeze(0), gates.unsqueeze(0)
        weight = probs.new_ones(probs.shape[:2]) if mask is None else mask.to(probs.dtype)
        weight = weight.unsqueeze(-1)  # [batch, seq, 1]
        top = onehot(gates.detach().argmax(-1), num_experts, probs.dtype)
        if self.kind == "hydra":
            count = sample_sums(weight, packed).clamp_min(1.0)  # [samples, 1]
            stat = sample_sums(probs * weight, packed) / count  # P_l[s, e]
            top_stat = sample_sums(top * weight, packed) / count  # H_l[s, e]
        else:
            count = weight.sum().reshape(1)
            stat = (probs * weight).sum((0, 1))  # sum of probabilities over counted tokens [E]
            top_stat = (top * weight).sum((0, 1))
        if self.recording(key):
            self.prob_stats.append(stat.detach())
            self.top_stats.append(top_stat)
            self.counts.append(count)
        return stat

    def compute(self) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        num_routers = len(self.keys)
        probs, tops = torch.stack(self.prob_stats).float(), torch.stack(self.top_stats).float()
        if self.kind == "hydra":  # [L, batch, E]
            p_mean, h_mean = probs.mean(0), tops.mean(0)
            value = (p_mean * h_mean).sum(-1).mean()
            grad = h_mean / (num_routers * h_mean.shape[0])  # d value / d P_l[s, e], the same for every l
            return value, {k: grad for k in self.keys}
        counts = torch.stack(self.counts).float()  # [L, 1]
        world = _dp_world()
        if world > 1:  # global token statistics: one collective per forward
            packed = torch.cat([probs, tops, counts], dim=1)
            dist.all_reduce(packed)
            probs, tops, counts = packed.split([probs.shape[1], tops.shape[1], 1], dim=1)
        num_experts = probs.shape[1]
        counts = counts.clamp_min(1.0)
        frac, mean_prob = tops / counts, probs / counts
        value = (num_experts * (frac * mean_prob).sum(-1)).mean()
        grad = world * num_experts * frac / (num_routers * counts)  # d value / d (local probability sums), x world
        return value, {k: grad[i] for i, k in enumerate(self.keys)}
