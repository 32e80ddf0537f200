"""The router z-loss (ST-MoE, Zoph et al. 2022): it penalises large router logits, which keeps gates from saturating.

Per routed layer l and sample s, over the sample's counted tokens: Z_l[s] = mean of logsumexp(logits)^2; the loss is
the mean over layers and samples (`router_z_loss_coef` times it joins the total). A mean over samples, like the hydra
balance loss, so N processes x b samples give the gradient of 1 process x N*b samples.

It reaches the routers the way the balance loss does (balance.py): each router records Z_l while the forward runs and
attaches it to its output (`AttachAux`), and backward asks this object for d(loss)/d(Z_l), fixed by `finish`.
"""

from __future__ import annotations

import torch


class RouterZLoss:
    def __init__(self):
        self.begin()

    def begin(self) -> None:
        self.keys: list[int] = []
        self.stats: list[torch.Tensor] = []  # detached Z_l, [batch] each
        self.finished = False
        self._grads: dict[int, torch.Tensor] = {}

    def record(self, key: int, logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Z_l of one router for this forward, [batch] (with grad: the tensor to attach).

        logits: [batch, seq, E] (a prompt router's: [batch, 1, E]) or [seq, E]; mask: [batch, seq] counted tokens or None.
        A recomputation during backward (gradient checkpointing) returns the statistic without recording it again."""
        if logits.dim() == 2:
            logits = logits.unsqueeze(0)
        z = torch.logsumexp(logits.float(), dim=-1).square()  # [batch, seq]
        if mask is None:
            stat = z.mean(1)
        else:
            weight = mask.to(z.dtype)
            stat = (z * weight).sum(1) / weight.sum(1).clamp_min(1.0)
        if not self.finished:
            self.keys.append(key)
            self.stats.append(stat.detach())
        return stat

    def finish(self) -> torch.Tensor | None:
        """The loss value of this forward (before its coefficient); fixes the gradients backward will apply."""
        if self.finished or not self.keys:
            self.finished = True
            return None
        self.finished = True
        stats = torch.stack(self.stats)  # [L, batch]
        grad = torch.full_like(stats[0], 1.0 / stats.numel())  # d mean / d Z_l[s], the same for every l and s
        self._grads = {k: grad for k in self.keys}
        return stats.mean()

    def grad_for(self, key: int, like: torch.Tensor) -> torch.Tensor:
        if key not in self._grads:
            raise RuntimeError("router z-loss gradient requested before finish(): call adapter_state.finish_forward() "
                               "after the forward and before backward")
        return self._grads[key].to(device=like.device, dtype=like.dtype)
