"""The frozen vision tower stays out of autograd in training: with activation checkpointing on, no backward reaches
its layers (LlavaTrainer hooks only the language model's input embeddings), while the adapters still get gradients,
also for text-only batches under reentrant checkpoints. The tower's backward is counted as bench/frozen_tower_step.py
counts it."""

import os
import sys

import pytest
import torch
from transformers import TrainerCallback

from llava.adapters import AdapterConfig, inject_adapters
from llava.model.tiny import build_tiny
from llava.train.activation_checkpointing import language_inputs_require_grad
from llava.train.train import train

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
from frozen_tower_step import tower_hook_counter as count_tower_backwards  # noqa: E402

from llava.adapters.attached import routing_state


def adapted_tiny(reentrant: bool, only_language_inputs: bool):
    model, _ = build_tiny(seed=0)
    inject_adapters(model, AdapterConfig.preset("asymlora", r=4, alpha=8, dropout=0.0))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.02)  # non-zero B: every adapter weight then gets a gradient
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": reentrant})
    if only_language_inputs:
        language_inputs_require_grad(model)
    return model.train()


def step(model, with_image: bool):
    n = model.config.image_seq_length
    text = [1, 60, 70, 80, 90, 100]
    ids = torch.tensor([[1] + [model.config.image_token_index] * n + text[1:]] * 2 if with_image else [text] * 2)
    inputs = {"input_ids": ids, "labels": ids.clone()}
    if with_image:
        inputs["pixel_values"] = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    state = routing_state(model)
    state.begin_batch(None, torch.ones_like(ids))
    loss = model(**inputs).loss
    state.finish_forward()
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad and "multi_modal" not in n}
    model.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize("reentrant", [True, False])
def test_no_backward_reaches_the_tower_and_adapters_still_learn(reentrant):
    model = adapted_tiny(reentrant, only_language_inputs=True)
    fired = count_tower_backwards(model)
    for with_image in (True, False):
        grads = step(model, with_image)
        assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values()), with_image
    assert fired[0] == 0


def test_transformers_own_hook_back_propagates_the_frozen_tower():
    """What transformers' checkpointing does by itself: the tower's layers run backward every step (so the test above
    can fail)."""
    model = adapted_tiny(False, only_language_inputs=False)
    fired = count_tower_backwards(model)
    step(model, with_image=True)
    assert fired[0] >= 1


class TowerWatch(TrainerCallback):
    def __init__(self):
        self.fired = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.fired = count_tower_backwards(model)


def test_training_with_activation_checkpointing_never_back_propagates_the_tower(tmp_path, small_data):
    spec, folder = small_data
    watch = TowerWatch()
    trainer = train(["--model_name_or_path", "tiny", "--data_path", spec, "--image_folder", folder,
                     "--output_dir", str(tmp_path / "run"), "--lora_enable", "True", "--lora_r", "4",
                     "--lora_alpha", "8", "--adapter_scheme", "asymlora", "--num_experts", "3", "--router_scope",
                     "mlp_block", "--mixture_targets", "gate_proj,up_proj,down_proj", "--balance_coef", "0.05",
                     "--per_device_train_batch_size", "4", "--max_steps", "3", "--learning_rate", "1e-2",
                     "--activation_checkpointing", "True", "--report_to", "none", "--disable_tqdm", "True",
                     "--save_strategy", "no", "--logging_steps", "1", "--use_cpu", "True", "--bf16", "True"], callbacks=[watch])
    assert trainer.state.global_step == 3
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    assert watch.fired is not None and watch.fired[0] == 0
