"""`--record_ranks`: what each data-parallel rank saw and ended with, for checking a multi-process run.

Every rank writes `OUTPUT/rank_records/rank{R}.json`: the dataset indices of every training batch it took (by
optimizer step) and a SHA-256 digest of its trainable tensors at the end (gathered under ZeRO-3). Disjoint indices
show the data is sharded; equal digests show the ranks stayed in step; rank 0's digest equals that of the saved
checkpoint's tensors.
"""

from __future__ import annotations

import hashlib
import json
import os

import torch

from llava.adapters.io import adapter_state_dict
from llava.model.zero import gathered


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class RankRecord:
    def __init__(self):
        self.batches: list[dict] = []

    def add(self, step: int, indices: torch.Tensor) -> None:
        self.batches.append({"step": step, "indices": indices.tolist()})

    def write(self, model, output_dir: str, rank: int) -> None:
        """A collective under ZeRO-3 (the gather): every rank must call it."""
        params = adapter_state_dict(model)
        with gathered(params.values()):
            digest = tensor_digest({k: v.detach().clone() for k, v in params.items()})
        folder = os.path.join(output_dir, "rank_records")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"rank{rank}.json"), "w") as f:
            json.dump({"rank": rank, "batches": self.batches, "trainable_digest": digest}, f)
