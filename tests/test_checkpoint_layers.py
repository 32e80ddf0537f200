"""--checkpoint_layers: activation checkpointing on the first N decoder layers only (the rest keep their activations
and are not recomputed), the same loss and gradients whatever N; `auto` takes N from the planner's memory estimate."""

import collections

import pytest
import torch

from llava.adapters import AdapterConfig, inject_adapters
from llava.model.tiny import build_tiny
from llava.train import plan_model
from llava.train.activation_checkpointing import checkpoint_first_layers, language_inputs_require_grad
from tests.helpers.data import write_small_data
from tests.helpers.training import run_training, tiny_inputs


def step(n: int | None):
    """One forward + backward of the tiny preset with checkpointing on the first n layers (None: off): the loss,
    the adapters' gradients and how often each decoder layer ran."""
    model, _ = build_tiny(seed=0)
    torch.manual_seed(1)
    inject_adapters(model, AdapterConfig(scheme="asymlora", r=4, num_experts=3, dropout=0.0, balance_coef=0.0))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    model.train()
    if n is not None:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x; older: the deprecated name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": True})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
        language_inputs_require_grad(model)
        assert checkpoint_first_layers(model, n) == 2
    calls = collections.Counter()
    layers = model.model.language_model.layers
    for index, layer in enumerate(layers):  # inside the layer: transformers checkpoints its forward, not its hooks
        layer.mlp.register_forward_pre_hook(lambda module, args, index=index: calls.update([index]))
    loss = model(**tiny_inputs(model), use_cache=False).loss
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads, [calls[i] for i in range(len(layers))]


def test_only_the_first_n_layers_are_recomputed_and_nothing_changes():
    reference_loss, reference_grads, calls = step(None)
    assert calls == [1, 1]
    for n, expected in ((0, [1, 1]), (1, [2, 1]), (2, [2, 2])):
        loss, grads, calls = step(n)
        assert calls == expected, (n, calls)  # a checkpointed layer runs again in backward
        torch.testing.assert_close(loss, reference_loss)
        assert grads.keys() == reference_grads.keys()
        for name, grad in grads.items():
            torch.testing.assert_close(grad, reference_grads[name], rtol=1e-5, atol=1e-7)


def test_auto_checkpoints_as_few_layers_as_fit():
    cfg = plan_model.llava_config("7b")
    counts = plan_model.count(plan_model.meta_model("7b", "asymlora"))
    state = sum(plan_model.memory_per_gpu(counts, 0, 1, 16).values())
    full, kept = plan_model.layer_bytes_per_token(cfg, adapted=True)
    tokens, layers = 16 * 2048, cfg.text_config.num_hidden_layers
    logits = tokens * 6 * cfg.text_config.vocab_size

    def need(n):  # what the first n layers checkpointed hold at the peak, written out
        whole = (layers - n) * full if n < layers else full  # all checkpointed: one layer rebuilt at a time
        return state + logits + tokens * (n * kept + whole)

    fit = lambda budget: plan_model.layers_to_checkpoint(cfg, counts, 0, 1, 16, 16, 2048, budget)  # noqa: E731
    assert fit(need(0)) == 0 and fit(need(0) - 1) > 0
    for n in (1, 9, 23, layers - 1):
        assert fit(need(n)) == n and fit(need(n) - 1) == n + 1
    assert need(layers) > need(layers - 1)  # all checkpointed peaks higher than all but one: never chosen if one fits
    assert fit(1e9) == layers  # nothing fits: every layer, as without the option
    assert [fit(b * 1e9) for b in (60, 80, 120, 141, 400)] == sorted([fit(b * 1e9) for b in (60, 80, 120, 141, 400)],
                                                                       reverse=True)


def test_the_trainer_applies_it(tmp_path):
    data = write_small_data(tmp_path)
    trainer = run_training(data, tmp_path / "out", max_steps=1,
                           extra=["--gradient_checkpointing", "True", "--checkpoint_layers", "1"])
    assert [layer.gradient_checkpointing for layer in trainer.model.model.language_model.layers] == [True, False]


def test_a_bad_value_is_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="--checkpoint_layers half: all, auto or a number of layers"):
        run_training(write_small_data(tmp_path), tmp_path / "out", extra=["--checkpoint_layers", "half"])
