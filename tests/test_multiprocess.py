"""The paper recipe as the scripts run it on several processes (CPU, gloo): a model built from parts (CLIP dir +
Llama dir + stage-1 mm_projector.bin), the AsymLoRA paper preset, gradient checkpointing, under DDP, ZeRO-2 and
ZeRO-3 with 2 processes. The data-parallel contract: N processes x b samples train exactly like 1 process x N*b.
The runs of one process count share one launch (the scripts' own arguments, one start-up per process)."""

import os

import pytest
import torch

from llava.adapters.io import adapter_state_dict
from llava.train.rank_record import tensor_digest
from tests.helpers.recipe_runs import finetune_env, finetune_together, global_batches, probe_logits, recipe_parts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return recipe_parts(tmp_path_factory)


CELLS = {  # name -> (DeepSpeed, batch per process, accumulation, balance loss)
    "zero2": ("zero2", 4, 1, "hydra"), "zero3-accumulated": ("zero3", 2, 2, "hydra"),
    "ddp-switch": (None, 4, 1, "switch"),  # DDP; switch pools token counts over ranks: its all-reduce path
}


@pytest.fixture(scope="module")
def runs(parts, tmp_path_factory):
    """Every run of this file, in two launches (one per process count; tests/helpers/recipe_runs.py's
    finetune_together): the 1-process references per balance-loss kind and the original-checkpoint run under
    ZeRO-3, then the three 2-process cells."""
    root = tmp_path_factory.mktemp("runs")
    one = {f"single-{balance}": {"out": root / f"single-{balance}", "balance": balance} for balance in ("hydra", "switch")}
    one["original"] = {"out": root / "original", "deepspeed": "zero3", "model": parts["orig"], "projector": False}
    two = {name: {"out": root / name, "deepspeed": deepspeed, "batch": batch, "grad_accum": grad_accum,
                  "balance": balance} for name, (deepspeed, batch, grad_accum, balance) in CELLS.items()}
    (root / "one").mkdir()
    (root / "two").mkdir()
    done = finetune_together({name: finetune_env(parts, nproc=1, **run) for name, run in one.items()}, 1, root / "one")
    done.update(finetune_together({name: finetune_env(parts, nproc=2, **run) for name, run in two.items()}, 2,
                                  root / "two"))
    return {name: (*done[name], settings["out"]) for name, settings in {**one, **two}.items()}


@pytest.mark.parametrize("cell", list(CELLS))
def test_two_processes_train_like_one_big_batch(runs, cell):
    _, batch, grad_accum, balance = CELLS[cell]
    ref_logs, ref_records, ref_stdout, ref_dir = runs[f"single-{balance}"]
    assert "global batch 8 = 8 per device x 1 processes x 1 nodes x 1 accumulation" in ref_stdout
    logs, records, stdout, out = runs[cell]
    assert f"= {batch} per device x 2 processes x 1 nodes x {grad_accum} accumulation" in stdout

    # ranks see disjoint samples, and together exactly the 1-process run's global batches
    for step in {b["step"] for b in records[0]["batches"]}:
        mine = [i for b in records[0]["batches"] if b["step"] == step for i in b["indices"]]
        theirs = [i for b in records[1]["batches"] if b["step"] == step for i in b["indices"]]
        assert mine and theirs and not set(mine) & set(theirs), step
    assert global_batches(records) == global_batches(ref_records)

    # the same losses (LM + hydra balance, logged as one) and the same learning rates per step
    assert len(logs) == len(ref_logs) == 3
    for got, want in zip(logs, ref_logs):
        for key in ("loss", "lm_loss", "balance_loss"):
            assert got[key] == pytest.approx(want[key], abs=1e-4), (key, got, want)
        assert got["learning_rate"] == pytest.approx(want["learning_rate"])  # adapters: 2e-4, cosine
        assert got["projector_learning_rate"] == pytest.approx(got["learning_rate"] / 10)  # projector: 2e-5

    # ranks end identical; rank 0's weights are the checkpoint's; it reloads to the 1-process run's logits
    assert records[0]["trainable_digest"] == records[1]["trainable_digest"]
    model, logits = probe_logits(out)
    assert tensor_digest(adapter_state_dict(model)) == records[0]["trainable_digest"]
    torch.testing.assert_close(logits, probe_logits(ref_dir)[1], atol=1e-4, rtol=1e-4)
    assert not [f for f in os.listdir(out) if f.startswith(".tmp-")]  # atomic writes left nothing behind


def test_original_llava_checkpoint_under_zero3(runs):
    """The original-layout checkpoint holds the same weights as the parts: the same training, under ZeRO-3."""
    ref_logs = runs["single-hydra"][0]
    logs, records, _, out = runs["original"]
    for got, want in zip(logs, ref_logs):
        assert got["loss"] == pytest.approx(want["loss"], abs=1e-4)
    model, _ = probe_logits(out)
    assert tensor_digest(adapter_state_dict(model)) == records[0]["trainable_digest"]
