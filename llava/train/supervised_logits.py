"""The LM head only where a label is: most of a LLaVA sample (image tokens, system line, questions) is unsupervised.

transformers' CausalLM loss computes logits for every position, upcasts them to fp32 and log-softmaxes over the
vocabulary; on the kit's recipe (SmolLM2's 49k-word head, 8-question conversations) that is about a quarter of a
training step, for positions whose loss is ignored anyway (docs/benchmarks.md). transformers' own `logits_to_keep`
(a boolean [batch, sequence] mask) and `shift_labels` (the targets of the kept positions) restrict the head and the
loss to the positions that predict a label: the same loss, sum and count, so gradients and gradient accumulation are
unchanged (tests/test_supervised_logits.py checks both against the full-head loss).
"""

from __future__ import annotations

import inspect
from functools import cache

import torch.nn.functional as F
from transformers import modeling_utils

from llava.constants import IGNORE_INDEX


@cache
def accepts_logits_mask(model_class: type) -> bool:
    """True where `logits_to_keep` may be a boolean [batch, sequence] mask: the model takes the argument and
    transformers slices with `slice_logits_to_keep` (older 5.x releases index with it as positions and fail)."""
    parameters = inspect.signature(model_class.forward).parameters
    return "logits_to_keep" in parameters and hasattr(modeling_utils, "slice_logits_to_keep")


def supervised_logits_only(inputs: dict) -> dict:
    """`inputs` with the head kept to positions whose next token has a label (the shifted labels as the targets)."""
    labels = inputs["labels"]
    targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
    keep = targets != IGNORE_INDEX
    return {**inputs, "logits_to_keep": keep, "shift_labels": targets[keep]}
