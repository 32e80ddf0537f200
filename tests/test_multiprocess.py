"""The paper recipe as the scripts run it on several processes (CPU, gloo): a model built from parts (CLIP dir +
Llama dir + stage-1 mm_projector.bin), the AsymLoRA paper preset, gradient checkpointing, under DDP, ZeRO-2 and
ZeRO-3 with 2 processes. The data-parallel contract: N processes x b samples train exactly like 1 process x N*b."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from llava.adapters.io import adapter_state_dict
from llava.model.checkpoint import load_checkpoint_model
from llava.train.rank_record import tensor_digest
from tests.model_parts import write_mixture, write_parts

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GLOBAL_BATCH = 8
_port = [29600]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    pytest.importorskip("deepspeed", reason="the deepspeed extra is part of `make install` (dev)")
    root = tmp_path_factory.mktemp("parts")
    paths = write_parts(str(root))
    paths["data"] = write_mixture(str(root / "data"))
    paths["images"] = str(root / "data")
    paths["root"] = str(root)
    return paths


def finetune(parts, out, nproc=1, deepspeed=None, batch=None, grad_accum=None, steps=3, extra="", model=None,
             tower=True, projector=True, balance="hydra"):
    _port[0] += 1
    env = {**os.environ, "MODEL": model or parts["lm"], "VISION_TOWER": parts["clip"] if tower else "",
           "PROJECTOR": parts["projector"] if projector else "", "DATA": parts["data"],
           "IMAGE_FOLDER": parts["images"], "OUTPUT": str(out), "PYTHON": sys.executable, "NUM_GPUS": str(nproc),
           "BATCH": str(batch or GLOBAL_BATCH // nproc), "GLOBAL_BATCH": str(GLOBAL_BATCH), "DROPOUT": "0",
           "PRECISION": "fp32", "WORKERS": "0", "SAVE_STEPS": "2", "LOGGING_STEPS": "1",
           "DEEPSPEED": f"configs/deepspeed/{deepspeed}.json" if deepspeed else "",
           "EXTRA_ARGS": f"--max_steps {steps} --warmup_ratio 0 --record_ranks True {extra}",
           "DS_ACCELERATOR": "cpu", "TORCH_EXTENSIONS_DIR": os.path.join(ROOT, ".torch_extensions"),
           "MASTER_PORT": str(_port[0]), "BALANCE_LOSS": balance}
    if grad_accum:
        env["GRAD_ACCUM"] = str(grad_accum)
    proc = subprocess.run(["bash", "scripts/finetune_asymlora.sh"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    records = [json.loads((out / "rank_records" / f"rank{r}.json").read_text()) for r in range(nproc)]
    return [h for h in history if "loss" in h], records, proc.stdout


def global_batches(records):
    """{step: sorted dataset indices of that optimizer step, over all ranks and accumulation micro-steps}"""
    out = {}
    for rec in records:
        for b in rec["batches"]:
            out.setdefault(b["step"], []).extend(b["indices"])
    return {k: sorted(v) for k, v in out.items()}


def probe_logits(directory):
    model, _, _ = load_checkpoint_model(str(directory))
    n = model.config.image_seq_length
    ids = torch.tensor([[1] + [model.config.image_token_index] * n + [50, 61, 72, 90]])
    torch.manual_seed(1)
    with torch.no_grad():
        logits = model(input_ids=ids, pixel_values=torch.randn(1, 3, 32, 32)).logits
    return model, logits


@pytest.fixture(scope="module")
def one_process(parts, tmp_path_factory):
    """The 1-process reference run per balance-loss kind (made once)."""
    runs = {}

    def get(balance="hydra"):
        if balance not in runs:
            out = tmp_path_factory.mktemp(f"single-{balance}") / "run"
            logs, records, stdout = finetune(parts, out, balance=balance)
            assert "global batch 8 = 8 per device x 1 processes x 1 accumulation" in stdout
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
    assert f"= {batch} per device x 2 processes x {grad_accum} accumulation" in stdout

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


def test_zero3_two_processes_resume(parts, tmp_path):
    """Resuming a 2-process ZeRO-3 run from checkpoint-2 gives steps 3-4 of the uninterrupted run."""
    full_logs, _, _ = finetune(parts, tmp_path / "full", nproc=2, deepspeed="zero3", steps=4)
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(tmp_path / "full" / "checkpoint-2", resumed_dir / "checkpoint-2")
    logs, _, _ = finetune(parts, resumed_dir, nproc=2, deepspeed="zero3", steps=4,
                          extra=f"--resume_from_checkpoint {resumed_dir / 'checkpoint-2'}")
    assert [h["step"] for h in logs] == [1, 2, 3, 4]  # steps 1-2 come from the checkpoint's trainer state
    for got, want in zip(logs[2:], full_logs[2:]):
        assert got["loss"] == pytest.approx(want["loss"], abs=1e-6)


def test_zero3_offload_keeps_the_trainers_optimizer_and_schedule(parts, tmp_path):
    logs, _, _ = finetune(parts, tmp_path / "run", deepspeed="zero3_offload", steps=4,
                          extra="--lr_scheduler_type cosine")
    lrs = [h["learning_rate"] for h in logs]
    proj = [h["projector_learning_rate"] for h in logs]
    # logged after each optimizer step: the rate the next step will use
    expected = [2e-4 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * s / 4))).item() for s in range(1, 5)]
    assert lrs == pytest.approx(expected, rel=1e-6)  # the Trainer's cosine, not DeepSpeed's WarmupLR
    assert proj == pytest.approx([x / 10 for x in expected], rel=1e-6)  # the projector's own group survives
    assert logs[-1]["loss"] < logs[0]["loss"]
