"""`--group_by_modality_length`: batches hold only image samples or only text samples, of similar length.

Mixed batches waste compute on padding (text-only samples are short) - LLaVA's reason for this sampler.
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


class ModalityLengthGroupedSampler(Sampler[int]):
    def __init__(self, lengths: list[int], batch_size: int, world_size: int = 1, seed: int = 0):
        self.lengths = lengths
        self.batch_size = batch_size * world_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def _batches(self, indices: list[int], g: torch.Generator) -> list[list[int]]:
        perm = [indices[i] for i in torch.randperm(len(indices), generator=g).tolist()]
        mega = self.batch_size * 50  # sort by length inside shuffled mega-batches, as transformers' LengthGroupedSampler
        out = []
        for start in range(0, len(perm), mega):
            chunk = sorted(perm[start:start + mega], key=lambda i: -abs(self.lengths[i]))
            out.extend(chunk[j:j + self.batch_size] for j in range(0, len(chunk), self.batch_size))
        return out

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        image = [i for i, n in enumerate(self.lengths) if n > 0]
        text = [i for i, n in enumerate(self.lengths) if n <= 0]
        batches = self._batches(image, g) + self._batches(text, g)
        order = torch.randperm(len(batches), generator=g).tolist()
        for b in order:
            yield from batches[b]
