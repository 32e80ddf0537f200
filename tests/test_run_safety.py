"""A run never silently loses work: a non-finite loss stops it with finite checkpoints left, a used or busy
OUTPUT is refused before the model loads, weight files get the umask's mode."""

import json
import os
import signal
import stat
import subprocess
import sys

import pytest
import torch

from llava.adapters import AdapterConfig, inject_adapters, save_adapters
from llava.checkpoint import load_checkpoint_model
from llava.model.tiny import build_tiny
from llava.train.run_dir import RunDirError, claim_output_dir, resolve_resume
from llava.train.train import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_nan_at_step_k_stops_the_run_and_leaves_finite_checkpoints(tmp_path, small_data):
    spec, folder = small_data
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "tests/scripts/fault_run.py", "nan", "6", str(out), spec, folder], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "step 6: the loss is not finite" in proc.stderr and "checkpoint-4" in proc.stderr
    assert "'loss': 'nan'" in proc.stdout or "'loss': nan" in proc.stdout  # logged as nan, never as 0
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    model, _, _ = load_checkpoint_model(str(out / "checkpoint-4"))
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.slow
def test_a_non_finite_gradient_stops_the_run_before_the_update(tmp_path, small_data):
    spec, folder = small_data
    proc = subprocess.run([sys.executable, "tests/scripts/fault_run.py", "infgrad", "3", str(tmp_path / "run"), spec, folder],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "step 3: a gradient is not finite" in proc.stderr
    model, _, _ = load_checkpoint_model(str(tmp_path / "run" / "checkpoint-2"))
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.slow
def test_no_checkpoint_is_written_from_non_finite_weights(tmp_path, small_data):
    """The fault lands right before a save (after step 4, save_steps 2): the save refuses, checkpoint-2 stays."""
    spec, folder = small_data
    proc = subprocess.run([sys.executable, "tests/scripts/fault_run.py", "nan", "5", str(tmp_path / "run"), spec, folder], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "step 4: 1 trainable tensors are not finite" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*")) == ["checkpoint-2"]


def test_a_used_output_is_refused_before_the_model_loads(tmp_path):
    (tmp_path / "checkpoint-3").mkdir()
    with pytest.raises(RunDirError, match="--resume_from_checkpoint last"):
        # a model path that does not exist: reaching the model load would raise something else
        train(["--model_name_or_path", str(tmp_path / "no-model"), "--data_path", "x.json",
               "--output_dir", str(tmp_path), "--lora_enable", "True", "--use_cpu", "True"])
    assert claim_output_dir(str(tmp_path), resume="last", overwrite=False, is_main=True) is not None


def test_a_second_concurrent_run_is_refused(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from llava.train.run_dir import claim_output_dir; "
        f"h = claim_output_dir({str(tmp_path)!r}, None, False, True); print('locked', flush=True); time.sleep(60)")],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirError, match=f"held by pid {holder.pid}"):  # a second run, refused at once
            train(["--model_name_or_path", str(tmp_path / "no-model"), "--data_path", "x.json",
                   "--output_dir", str(tmp_path), "--lora_enable", "True", "--use_cpu", "True"])
    finally:
        holder.kill()
        holder.wait()
    claim_output_dir(str(tmp_path), None, False, True).close()  # released with the process that held it


def test_weight_files_follow_the_umask(tmp_path):
    model, _ = build_tiny()
    inject_adapters(model, AdapterConfig(r=2))
    old = os.umask(0o022)
    try:
        save_adapters(model, str(tmp_path))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "llava_adapters.safetensors").st_mode) == 0o644


def _losses(out):
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return {h["step"]: h["loss"] for h in history if "loss" in h}


@pytest.mark.slow
def test_kill_during_a_save_then_resume_last_continues_exactly(tmp_path, small_data):
    spec, folder = small_data
    run = [sys.executable, "tests/scripts/fault_run.py"]
    full = subprocess.run(run + ["plain", "0", str(tmp_path / "full"), spec, folder], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert full.returncode == 0, full.stderr[-2000:]
    killed = subprocess.run(run + ["kill", "4", str(tmp_path / "run"), spec, folder], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL
    partial = tmp_path / "run" / "checkpoint-4"
    assert partial.is_dir() and not (partial / "trainer_state.json").exists()  # killed mid-save: weights, no state
    resumed = subprocess.run(run + ["plain", "0", str(tmp_path / "run"), spec, folder, "--resume_from_checkpoint",
                                    "last"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"skipping {partial}: no trainer_state.json" in resumed.stderr
    assert f"resuming from {tmp_path / 'run' / 'checkpoint-2'}" in resumed.stderr
    want, got = _losses(tmp_path / "full"), _losses(tmp_path / "run")
    assert sorted(got) == [1, 2, 3, 4, 5, 6] and all(got[s] == want[s] for s in range(3, 7))  # exact, fp32 CPU


def test_an_incomplete_checkpoint_is_refused_by_name(tmp_path):
    (tmp_path / "checkpoint-2").mkdir()
    with pytest.raises(RunDirError, match="no trainer_state.json"):
        resolve_resume(str(tmp_path), str(tmp_path / "checkpoint-2"))
    with pytest.raises(RunDirError, match="no checkpoint-N complete on every node"):
        resolve_resume(str(tmp_path), "last", log=lambda _m: None)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_pickle_that_would_run_code_is_refused_by_name(tmp_path):
    ckpt = tmp_path / "checkpoint-2"
    ckpt.mkdir()
    (ckpt / "trainer_state.json").write_text("{}")
    (ckpt / "llava_adapters.safetensors").write_bytes(b"")
    torch.save({"state": {}}, ckpt / "optimizer.pt")
    import pickle

    (ckpt / "rng_state.pth").write_bytes(pickle.dumps(_RunsCode()))
    with pytest.raises(RunDirError, match=r"refused to load .*rng_state\.pth"):
        resolve_resume(str(tmp_path), str(ckpt))
    assert not os.path.exists("PWNED") and not (tmp_path / "PWNED").exists()


def test_a_malicious_model_pickle_is_refused_by_name(tmp_path):
    from llava.model.builder import load_model
    from tests.helpers.model_parts import write_parts

    paths = write_parts(str(tmp_path))
    os.remove(os.path.join(paths["lm"], "model.safetensors"))
    import pickle

    with open(os.path.join(paths["lm"], "pytorch_model.bin"), "wb") as f:
        f.write(pickle.dumps(_RunsCode()))
    with pytest.raises(ValueError, match=r"refused to load .*pytorch_model\.bin: not a tensors-only"):
        load_model(paths["lm"], vision_tower=paths["clip"])
    assert not os.path.exists("PWNED")


def test_an_elastic_restart_may_use_its_own_output_and_resumes_by_itself(tmp_path, monkeypatch):
    """TORCHELASTIC_RESTART_COUNT > 0 (torchrun restarted the workers): the OUTPUT is this run's; with no
    --resume_from_checkpoint the newest complete checkpoint is picked, or a fresh start when none is complete."""
    (tmp_path / "checkpoint-4").mkdir()  # a save cut short by the failure
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    with pytest.raises(RunDirError, match="already holds a run"):
        claim_output_dir(str(tmp_path), None, False, True)  # the first attempt: an independent run is refused
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    claim_output_dir(str(tmp_path), None, False, True).close()
    messages = []
    assert resolve_resume(str(tmp_path), None, log=messages.append) is None
    assert messages[-1] == "elastic restart 1: no complete checkpoint yet, starting over"
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    assert resolve_resume(str(tmp_path), None) is None  # not a restart: no resume unless asked


@pytest.mark.slow
def test_an_out_of_memory_error_on_one_node_ends_every_node_within_seconds_naming_it(tmp_path, small_data):
    """Two "nodes" (two launches of 1 process each, gloo): rank 1 raises CUDA's out-of-memory error at step 2. Its
    node's launcher cannot stop rank 0 (another node); rank 0 stops within 15 s, DIST_TIMEOUT far away, saying why."""
    import time

    from tests.helpers.recipe_runs import free_port

    spec, folder = small_data
    port = free_port()
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    procs = []
    for node in (0, 1):
        log = open(tmp_path / f"node{node}.log", "w")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node),
             "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", str(port),
             "tests/scripts/fault_run.py", "oom", "2", str(tmp_path / "run"), spec, folder, "--ddp_timeout", "300"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    try:
        code1 = procs[1].wait(timeout=300)
        t0 = time.monotonic()
        code0 = procs[0].wait(timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    node0 = (tmp_path / "node0.log").read_text()
    print(f"rank 0 out {elapsed:.1f} s after rank 1's node")
    assert code1 != 0 and code0 != 0
    assert elapsed < 15, f"rank 0 took {elapsed:.1f} s"
    cause = [line for line in node0.splitlines() if line.startswith("error: rank 0:")]
    assert cause == ["error: rank 0: stopping, another process of this job failed: rank 1: OutOfMemoryError: CUDA out "
                     "of memory. Tried to allocate 20.00 GiB (injected on rank 1)"], node0[-3000:]
