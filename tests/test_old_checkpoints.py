"""Checkpoints written by the code before the package reorganisation (tests/fixtures/checkpoints_6f1b538, and the
script that wrote them there) load with the current code and give the logits that code gave: task heads, routed
AsymLoRA and MixLoRA."""

import os

import pytest
import torch
from safetensors.torch import load_file

from llava.adapters.attached import adapter_config
from llava.adapters.checkpoint import load_checkpoint_model
from llava.model.builder import load_model
from tests.helpers.training import logits

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "checkpoints_6f1b538")


@pytest.mark.parametrize("name", ["tasks", "routed", "mixlora"])
def test_a_checkpoint_written_before_the_reorganisation_gives_the_same_logits(name):
    expected = load_file(os.path.join(HERE, "expected_logits.safetensors"))[name]
    model, tokenizer, _ = load_checkpoint_model(os.path.join(HERE, name))
    config = adapter_config(model)
    assert config.scheme == {"tasks": "asymlora", "routed": "asymlora", "mixlora": "mixlora"}[name]
    task = torch.tensor([1, 2]) if name == "tasks" else None
    got = logits(model, tokenizer, task)[:, -4:]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    base, _, _ = load_model("tiny")  # the control: the adapters and projector change the logits
    assert (logits(base, tokenizer)[:, -4:] - expected).abs().max() > 1e-3
