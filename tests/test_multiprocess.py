"""The paper recipe as the scripts run it on several processes (CPU, gloo): a model built from parts (CLIP dir +
Llama dir + stage-1 mm_projector.bin), the AsymLoRA paper preset, gradient checkpointing, under DDP, ZeRO-2 and
ZeRO-3 with 2 processes. The data-parallel contract: N processes x b samples train exactly like 1 process x N*b."""

import os

import pytest
import torch

from llava.adapters.io import adapter_state_dict
from llava.train.rank_record import tensor_digest
from tests.helpers.recipe_runs import finetune, global_batches, probe_logits, recipe_parts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return recipe_parts(tmp_path_factory)


@pytest.fixture(scope="module")
def one_process(parts, tmp_path_factory):
    """The 1-process reference run per balance-loss kind (made once)."""
    runs = {}

    def get(balance="hydra"):
        if balance not in runs:
            out = tmp_path_factory.mktemp(f"single-{balance}") / "run"
            logs, records, stdout = finetune(parts, out, balance=balance)
            assert "global batch 8 = 8 per device x 1 processes x 1 nodes x 1 accumulation" in stdout
            runs[balance] = (logs, records, out)
        return runs[balance]
    return get


@pytest.fixture(scope="module")
def single(one_process):
    return one_process("hydra")


@pytest.mark.parametrize("deepspeed,batch,grad_accum,balance", [
    ("zero2", 4, 1, "hydra"), ("zero3", 2, 2, "hydra"),
    (None, 4, 1, "switch"),  # DDP; switch pools token counts over ranks: its all-reduce path
])
def test_two_processes_train_like_one_big_batch(parts, one_process, tmp_path, deepspeed, batch, grad_accum, balance):
    ref_logs, ref_records, ref_dir = one_process(balance)
    out = tmp_path / "run"
    logs, records, stdout = finetune(parts, out, nproc=2, deepspeed=deepspeed, batch=batch, grad_accum=grad_accum,
                                     balance=balance)
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


def test_original_llava_checkpoint_under_zero3(parts, single, tmp_path):
    """The original-layout checkpoint holds the same weights as the parts: the same training, under ZeRO-3."""
    ref_logs, _, _ = single
    logs, records, _ = finetune(parts, tmp_path / "run", deepspeed="zero3", model=parts["orig"], projector=False)
    for got, want in zip(logs, ref_logs):
        assert got["loss"] == pytest.approx(want["loss"], abs=1e-4)
    model, _ = probe_logits(tmp_path / "run")
    assert tensor_digest(adapter_state_dict(model)) == records[0]["trainable_digest"]
