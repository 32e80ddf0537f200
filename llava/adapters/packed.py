"""Several samples in one row (padding-free training): which sample each token belongs to, and per-sample sums.

Packing drops the padding a batch of uneven samples would compute on, but the routers' statistics are per sample (the
hydra balance loss and the z-loss average over each sample's tokens, a prompt router and mixlora read each sample's
prompt, task heads and the router load follow each sample's task). With one sample per row those are reductions
over the sequence axis; packed, they are sums over each sample's span. Every per-sample reduction goes through
`sample_sums`, so both layouts give the same statistics (tests/test_padding_free.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PackedSamples:
    segments: torch.Tensor  # [rows, seq] long: the batch index of the sample each token belongs to
    count: int  # samples in the batch (known on the host: no device sync to size the sums)

    @classmethod
    def from_position_ids(cls, position_ids: torch.Tensor, count: int) -> PackedSamples:
        """A sample starts where its position is 0 (the collator restarts positions per sample)."""
        return cls((position_ids == 0).long().flatten().cumsum(0).sub(1).view_as(position_ids), count)

    @classmethod
    def of_batch(cls, inputs: dict, task_ids: torch.Tensor | None) -> PackedSamples | None:
        """A collated batch's packing: positions and no attention mask (SupervisedCollator(padding_free=True)), one
        task id per sample; None for a padded batch."""
        if "position_ids" not in inputs or "attention_mask" in inputs or task_ids is None:
            return None
        return cls.from_position_ids(inputs["position_ids"], task_ids.numel())

    def lines_up(self, x: torch.Tensor) -> bool:
        return x.dim() >= 3 and tuple(x.shape[:2]) == tuple(self.segments.shape)

    def spread(self, per_sample: torch.Tensor) -> torch.Tensor:
        """[samples, ...] -> [rows, seq, ...]: each token gets its sample's value."""
        return per_sample[self.segments.to(per_sample.device)]


def sample_sums(t: torch.Tensor, packed: PackedSamples | None) -> torch.Tensor:
    """[batch, seq, ...] -> [samples, ...]: the sum over each sample's tokens (rows are samples when not packed)."""
    if packed is None:
        return t.sum(1)
    segments = packed.segments.to(t.device).reshape(-1)
    return t.new_zeros(packed.count, *t.shape[2:]).index_add_(0, segments, t.flatten(0, 1))
