"""The router z-loss (ST-MoE, Zoph et al. 2022): it penalises large router logits, which keeps gates from saturating.

Per routed layer l and sample s, over the sample's counted tokens: Z_l[s] = mean of logsumexp(logits)^2; the loss is
the mean over layers and samples (`router_z_loss_coef` times it joins the total). A mean over samples, like the hydra
balance loss, so N processes x b samples give the gradient of 1 process x N*b samples.

It reaches the routers the way the balance loss does (balance.py): each router records Z_l while the forward runs and
attaches it to its output (`AttachAux`), and backward asks this object for d(loss)/d(Z_l), fixed by `finish`.
"""

from __future__ import annotations

import torch

from llava.adapters.packed import PackedSamples, sample_sums
from llava.adapters.recorded_loss import RecordedLoss


class RouterZLoss(RecordedLoss):
    what = "router z-loss"

    def __init__(self):
        self.begin()

    def begin(self) -> None:
        super().begin()
        self.stats: list[torch.Tensor] = []  # detached Z_l, [batch] each

    def record(self, key: int, logits: torch.Tensor, mask: torch.Tensor | None,
               packed: PackedSamples | None = None) -> torch.Tensor:
        """Z_l of one router for this forward, [samples] (with grad: the tensor to attach).

        logits: [batch, seq, E] (a prompt router's: [samples, 1, E]) or [seq, E]; mask: [batch, seq] counted tokens or
        None; packed: the samples of a packed batch.
        A recomputation during backward (gradient checkpointing) returns the statistic without recording it again."""
        if logits.dim() == 2:
            logits = logits.unsqueeze(0)
        z = torch.logsumexp(logits.float(), dim=-1).square()  # [batch, seq]
        if mask is None and packed is None:
            stat = z.mean(1)
        else:
            weight = z.new_ones(z.shape) if mask is None else mask.to(z.dtype)
            stat = sample_sums(z * weight, packed) / sample_sums(weight, packed).clamp_min(1.0)
        if self.recording(key):
            self.stats.append(stat.detach())
        return stat

    def compute(self) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        stats = torch.stack(self.stats)  # [L, samples]
        grad = torch.full_like(stats[0], 1.0 / stats.numel())  # d mean / d Z_l[s], the same for every l and s
        return stats.mean(), {k: grad for k in self.keys}
