"""Batch collation: right padding (or padding-free packing), image and text-only samples in one batch, task ids for
routed adapters."""

from __future__ import annotations

import torch

from llava.constants import IGNORE_INDEX
from llava.data.processor_batch import collate


class SupervisedCollator:
    """Pads to the longest item; `pixel_values` holds only the images present, in order, as Llava expects.

    padding_free: the batch's samples end to end in one row, positions restarting at 0 for each and no attention mask,
    transformers' packed format (its attention masks build one causal block per sample from the positions, or
    flash-attn's varlen kernel takes them), so no FLOP is spent on padding. Each sample's first label is ignored, so the
    last token of one sample is never taught to predict the next sample's first (no row's first token is a target).
    """

    def __init__(self, pad_token_id: int, max_length: int | None = None, padding_free: bool = False):
        self.pad_token_id = pad_token_id
        self.max_length = max_length
        self.padding_free = padding_free
        self.dropped = 0  # skipped samples (None items) seen by this collator

    def __call__(self, items):
        kept = [it for it in items if it is not None]
        self.dropped += len(items) - len(kept)
        if not kept:
            raise ValueError("every sample of this batch was skipped as bad input; check the skip log")
        batch = self.rows(kept)
        batch["task_ids"] = torch.tensor([it["task_id"] for it in kept], dtype=torch.long)
        batch["sample_index"] = torch.tensor([it.get("index", -1) for it in kept], dtype=torch.long)
        return batch

    def rows(self, kept: list) -> dict:
        """The model's inputs for the kept items: ids, labels, masks or positions, the images' pixels."""
        batch = self.packed(kept) if self.padding_free else self.padded(kept)
        images = [it["pixel_values"] for it in kept if it["pixel_values"] is not None]
        if images:
            batch["pixel_values"] = torch.stack(images)
        return batch

    def padded(self, kept: list) -> dict:
        length = max(len(it["input_ids"]) for it in kept)
        input_ids = torch.full((len(kept), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(kept), length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(kept), length), dtype=torch.long)
        for i, it in enumerate(kept):
            n = len(it["input_ids"])
            input_ids[i, :n] = it["input_ids"]
            labels[i, :n] = it["labels"]
            attention_mask[i, :n] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}

    @staticmethod
    def packed(kept: list) -> dict:
        labels = [torch.as_tensor(it["labels"], dtype=torch.long).clone() for it in kept]
        for sample_labels in labels:
            sample_labels[0] = IGNORE_INDEX
        return {"input_ids": torch.cat([torch.as_tensor(it["input_ids"], dtype=torch.long) for it in kept])[None],
                "labels": torch.cat(labels)[None],
                "position_ids": torch.cat([torch.arange(len(it["input_ids"])) for it in kept])[None]}


class ProcessorCollator(SupervisedCollator):
    """Batches for another family than LLaVA-1.5: the conversations through the model's own processor and chat
    template (data/processor_batch.py), right-padded; skipped items and task ids as SupervisedCollator's."""

    def __init__(self, processor, max_length: int | None = None):
        processor.tokenizer.padding_side = "right"  # labels and the loss read rows left to right from position 0
        super().__init__(processor.tokenizer.pad_token_id, max_length)
        self.processor = processor

    def rows(self, kept: list) -> dict:
        return collate(self.processor, [it["conversation"] for it in kept], self.max_length)
