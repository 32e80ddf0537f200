"""Padding-free batches (`--padding_free`): the samples packed end to end in one row give the padded batch's loss,
router losses, router load and gradients, for every scheme (task heads, token and prompt routers, both balance
losses, the z-loss, mixlora's per-instance selection); and a training run through the user's entry point matches
the padded run step by step. fp32: the comparison is exact up to summation order."""

import json

import pytest
import torch

from llava.adapters import AdapterConfig, inject_adapters
from llava.adapters.attached import routing_state
from llava.adapters.packed import PackedSamples
from llava.constants import IGNORE_INDEX
from llava.data import SupervisedCollator
from llava.data.dataset import SupervisedDataset
from llava.model.image import ImageTransform, clip_image_processor
from llava.model.tiny import TINY_IMAGE_SIZE, build_tiny
from llava.train.args import ModelArguments, TrainingArguments
from llava.train.supervised_logits import supervised_logits_only
from llava.train.train import padding_free
from tests.helpers.data import conversation, write_images, write_small_data
from tests.helpers.training import run_training

CONFIGS = {
    "lora": dict(scheme="lora"),
    "asymlora tasks x experts, hydra, z-loss": dict(scheme="asymlora", num_experts=3, num_tasks=2, balance_coef=0.1,
                                                   router_z_loss_coef=0.01),
    "asymlora block router, switch balance": dict(scheme="asymlora", num_experts=3, router_scope="mlp_block",
                                                  mixture_targets=["gate_proj", "up_proj", "down_proj"],
                                                  balance_loss="switch", balance_coef=0.1),
    "asymlora prompt router, z-loss": dict(scheme="asymlora", num_experts=3, router_input="prompt",
                                           balance_coef=0.1, router_z_loss_coef=0.01),
    "moe_lora top-2": dict(scheme="moe_lora", num_experts=3, router="topk", top_k=2, balance_coef=0.1),
    "mixlora": dict(scheme="mixlora", num_experts=6, r=2),
}


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    """Four samples of different lengths and two tasks, text-only and image, multi-turn among them."""
    folder = tmp_path_factory.mktemp("packed")
    names = write_images(folder, n=3)
    long = conversation(0, image=names[0], task="a", question="what shape is it? " * 6, answer="a red circle")
    long["conversations"] += [{"from": "human", "value": "and the colour?"}, {"from": "gpt", "value": "red"}]
    rows = [long, conversation(1, task="b", question="say yes", answer="yes"),
            conversation(2, image=names[1], task="b", answer="triangle"),
            conversation(3, image=names[2], task="a", question="what colour is the shape in the picture?")]
    path = folder / "data.json"
    path.write_text(json.dumps(rows))
    _, tokenizer = build_tiny()
    dataset = SupervisedDataset(str(path), tokenizer, ImageTransform(clip_image_processor(TINY_IMAGE_SIZE)),
                                image_folder=str(folder), image_seq_length=(TINY_IMAGE_SIZE // 8) ** 2)
    items = [dataset[i] for i in range(len(rows))]
    assert len({len(it["input_ids"]) for it in items}) == len(items)  # every length differs: padding to remove
    return items, tokenizer.pad_token_id


def test_collator_packs_samples_end_to_end(items):
    items, pad = items
    packed = SupervisedCollator(pad, padding_free=True)(items)
    padded = SupervisedCollator(pad)(items)
    lengths = [len(it["input_ids"]) for it in items]
    assert "attention_mask" not in packed and packed["input_ids"].shape == (1, sum(lengths))
    starts = torch.tensor([0, *lengths[:-1]]).cumsum(0)
    assert torch.equal(packed["position_ids"][0, starts], torch.zeros(len(items), dtype=torch.long))
    for i, (start, n) in enumerate(zip(starts.tolist(), lengths)):
        assert torch.equal(packed["input_ids"][0, start:start + n], padded["input_ids"][i, :n])
        assert torch.equal(packed["position_ids"][0, start:start + n], torch.arange(n))
        assert packed["labels"][0, start] == IGNORE_INDEX  # no sample's last token learns the next one's first
        assert torch.equal(packed["labels"][0, start + 1:start + n], padded["labels"][i, 1:n])
    assert torch.equal(packed["pixel_values"], padded["pixel_values"]) and torch.equal(packed["task_ids"],
                                                                                      padded["task_ids"])
    segments = PackedSamples.from_position_ids(packed["position_ids"], len(items)).segments
    assert torch.equal(segments[0], torch.repeat_interleave(torch.arange(len(items)), torch.tensor(lengths)))


def forward_backward(model, batch, packed: bool, config: dict):
    """What LlavaTrainer.compute_loss does for one batch: the loss, the router losses, the load, the gradients."""
    batch = dict(batch)
    task_ids, state = batch.pop("task_ids"), routing_state(model)
    batch.pop("sample_index")
    samples = PackedSamples.of_batch(batch, task_ids)  # as LlavaTrainer.compute_loss reads the batch
    assert (samples is not None) == packed
    state.begin_batch(task_ids, batch.get("attention_mask"), batch["labels"], samples)
    state.aux_grad_scale, state.z_grad_scale = config.get("balance_coef", 0.0), config.get("router_z_loss_coef", 0.0)
    state.start_load_tracking(2, config.get("num_experts", 1), top_counts=True)
    model.zero_grad()
    loss = model(**supervised_logits_only(batch), use_cache=False).loss
    balance = state.finish_forward()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), balance, state.z_value, state.load.clone(), grads


@pytest.mark.parametrize("name", list(CONFIGS))
def test_packed_batch_gives_the_padded_batchs_loss_statistics_and_gradients(items, name):
    items, pad = items
    model, _ = build_tiny(seed=0)
    torch.manual_seed(1)
    config = {"r": 4, "alpha": 8, "dropout": 0.0, "task_names": ["a", "b"], **CONFIGS[name]}
    inject_adapters(model, AdapterConfig(**config))
    with torch.no_grad():  # B starts at zero: give the adapters (and so the routers) something to pass on
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.2)
    model.train()
    padded = forward_backward(model, SupervisedCollator(pad)(items), False, config)
    packed = forward_backward(model, SupervisedCollator(pad, padding_free=True)(items), True, config)
    torch.testing.assert_close(packed[0], padded[0], rtol=1e-5, atol=1e-6)
    for kind, a, b in (("balance", packed[1], padded[1]), ("z-loss", packed[2], padded[2])):
        assert (a is None) == (b is None), kind
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=kind)
    expected_aux = config.get("balance_coef", 0) > 0
    assert (padded[1] is not None) == expected_aux and (padded[2] is not None) == ("router_z_loss_coef" in config)
    if config["scheme"] != "lora":  # the router load per task: every token counted once, by its own sample's task
        assert padded[3].sum() > 0
        torch.testing.assert_close(packed[3], padded[3], rtol=1e-5, atol=1e-4)
    assert packed[4].keys() == padded[4].keys() and any("router" in n for n in padded[4]) == (config["scheme"] != "lora")
    for n, grad in packed[4].items():  # within fp32 summation-order noise of the gradient's scale
        error, scale = (grad - padded[4][n]).abs().max(), padded[4][n].abs().max()
        assert error <= 1e-5 * scale + 1e-8, (n, error, scale)


def test_training_padding_free_matches_padded_step_by_step(tmp_path):
    """The user's entry point, 4 optimizer steps of 4 mixed image / text-only samples, gradient accumulation 2:
    the logged losses and the trained adapters agree."""
    data = write_small_data(tmp_path)
    extra = ["--num_tasks", "-1", "--router_z_loss_coef", "1e-3", "--gradient_accumulation_steps", "2"]
    runs = {}
    for mode in ("padded", "packed"):
        flags = extra + (["--padding_free", "True"] if mode == "packed" else [])
        trainer = run_training(data, tmp_path / mode, scheme="asymlora", max_steps=4, extra=flags)
        logs = [h for h in trainer.state.log_history if "loss" in h]
        weights = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
        runs[mode] = logs, weights
    (padded_logs, padded_w), (packed_logs, packed_w) = runs["padded"], runs["packed"]
    assert len(padded_logs) == len(packed_logs) == 4
    for a, b in zip(packed_logs, padded_logs):
        for key in ("loss", "lm_loss", "balance_loss", "router_z_loss", "grad_norm"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), (key, a, b)
    assert packed_w.keys() == padded_w.keys()
    # Adam divides by the gradient's running RMS: an element whose gradient is near zero in both runs can move by a
    # fraction of the learning rate (1e-2) on summation-order noise alone; every other element agrees to 1e-5
    diffs = torch.cat([(w - padded_w[n]).abs().flatten() for n, w in packed_w.items()])
    assert diffs.max() < 1e-3 and (diffs > 1e-5).float().mean() < 1e-3, (diffs.max(), (diffs > 1e-5).sum())


@pytest.mark.parametrize("attention,asked,expected", [("sdpa", None, False), ("eager", None, False),
                                                      ("flash_attention_2", None, True), ("sdpa", True, True),
                                                      ("flash_attention_2", False, False)])
def test_padding_free_by_default_only_where_attention_runs_per_sample(attention, asked, expected):
    """SDPA and eager attend over a packed row under a block-diagonal mask (quadratic in the row's length); flash-attn's
    varlen kernel attends per sample. An explicit --padding_free wins."""
    model_args = ModelArguments(attn_implementation=attention)
    training_args = TrainingArguments(output_dir="unused", padding_free=asked, report_to="none")
    assert padding_free(model_args, training_args) is expected
