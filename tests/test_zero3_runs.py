"""ZeRO-3 runs of the paper recipe beyond one step pattern: a 2-process resume, and zero3_offload.json keeping the
Trainer's optimizer groups and schedule (DeepSpeed's CPU Adam)."""

import shutil

import pytest
import torch

from tests.recipe_runs import finetune, recipe_parts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return recipe_parts(tmp_path_factory)


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
