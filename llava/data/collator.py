"""Batch collation: right padding, image and text-only samples in one batch, task ids for routed adapters."""

from __future__ import annotations

import torch

from llava.constants import IGNORE_INDEX


class SupervisedCollator:
    """Pads to the longest item; `pixel_values` holds only the images present, in order, as Llava expects."""

    def __init__(self, pad_token_id: int, max_length: int | None = None):
        self.pad_token_id = pad_token_id
        self.max_length = max_length
        self.dropped = 0  # skipped samples (None items) seen by this collator

    def __call__(self, items):
        kept = [it for it in items if it is not None]
        self.dropped += len(items) - len(kept)
        if not kept:
            raise ValueError("every sample of this batch was skipped as bad input; check the skip log")
        length = max(len(it["input_ids"]) for it in kept)
        input_ids = torch.full((len(kept), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(kept), length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(kept), length), dtype=torch.long)
        for i, it in enumerate(kept):
            n = len(it["input_ids"])
            input_ids[i, :n] = it["input_ids"]
            labels[i, :n] = it["labels"]
            attention_mask[i, :n] = 1
        batch = {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask,
                 "task_ids": torch.tensor([it["task_id"] for it in kept], dtype=torch.long),
                 "sample_index": torch.tensor([it.get("index", -1) for it in kept], dtype=torch.long)}
        images = [it["pixel_values"] for it in kept if it["pixel_values"] is not None]
        if images:
            batch["pixel_values"] = torch.stack(images)
        return batch
