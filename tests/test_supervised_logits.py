"""The head restricted to labelled positions gives transformers' full-head loss and gradients (mean and summed)."""

import pytest
import torch

from llava.model.tiny import build_tiny
from llava.train.supervised_logits import IGNORE_INDEX, accepts_logits_mask, supervised_logits_only


def batch(tokenizer, seed=0):
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, 200, (3, 24), generator=g)
    labels = input_ids.clone()
    labels[:, :10] = IGNORE_INDEX  # the prompt
    labels[1, 15:19] = IGNORE_INDEX  # a second user turn
    labels[2, 20:] = IGNORE_INDEX  # padding
    attention_mask = torch.ones_like(input_ids)
    attention_mask[2, 20:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def loss_and_grads(model, inputs):
    model.zero_grad()
    loss = model(**inputs).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("summed", [False, True])
def test_same_loss_and_gradients_as_the_full_head(summed):
    model, tokenizer = build_tiny(seed=0)
    assert accepts_logits_mask(type(model))  # else training would silently pay for the full head
    inputs = batch(tokenizer)
    if summed:  # the Trainer's gradient-accumulation form: a sum divided by the supervised tokens of all micro-batches
        inputs["num_items_in_batch"] = torch.tensor(57)
    full_loss, full_grads = loss_and_grads(model, inputs)
    kept = supervised_logits_only(inputs)
    n_targets = int((inputs["labels"][:, 1:] != IGNORE_INDEX).sum())
    assert kept["logits_to_keep"].shape == inputs["labels"].shape and int(kept["logits_to_keep"].sum()) == n_targets
    assert model(**kept).logits.shape[0] == n_targets  # the head really ran on the labelled positions only
    loss, grads = loss_and_grads(model, kept)
    torch.testing.assert_close(loss, full_loss, rtol=1e-5, atol=1e-6)
    assert grads.keys() == full_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, full_grads[name], rtol=1e-4, atol=1e-6, msg=name)
