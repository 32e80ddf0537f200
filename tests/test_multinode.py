"""Several nodes as several launches of scripts/finetune_asymlora.sh on localhost (gloo), a model built from parts:
two nodes train exactly like one node with two processes; a lost process ends the job within DIST_TIMEOUT; an
elastic restart resumes by itself; node-local disks resume after a kill; the SLURM script and the hostfile launch."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from tests.helpers.recipe_runs import (
    ROOT,
    finetune,
    free_port,
    losses,
    node_env,
    recipe_parts,
    start,
    wait_all,
    wait_for,
    worker_pids,
)

pytestmark = pytest.mark.slow
STEPS = 6  # 48 samples / global batch 8: one epoch


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return recipe_parts(tmp_path_factory, per_task=16)


@pytest.fixture(scope="module")
def one_node(parts, tmp_path_factory):
    """The reference per engine: one node, 2 processes, 6 steps (made once)."""
    runs = {}

    def get(deepspeed=None):
        if deepspeed not in runs:
            out = tmp_path_factory.mktemp(f"one-node-{deepspeed}") / "run"
            logs, records, _ = finetune(parts, out, nproc=2, deepspeed=deepspeed, steps=STEPS,
                                        env={"SAVE_TOTAL_LIMIT": "10"})
            runs[deepspeed] = (logs, records, out)
        return runs[deepspeed]
    return get


def two_nodes(parts, out, tmp_path, deepspeed=None, env=None, outs=None):
    port = free_port()
    outs = outs or [out, out]
    procs = [start(node_env(parts, outs[r], r, port, deepspeed=deepspeed, env=env), tmp_path / f"node{r}.log")
             for r in range(2)]
    return procs


def log_text(tmp_path, r):
    return (tmp_path / f"node{r}.log").read_text()


# DDP: what the launch changes (two launches of one process, static ranks) is the same under every engine; ZeRO-2/3
# on several processes equal one process in tests/test_multiprocess.py and train alike in tests/test_scheme_matrix.py.
@pytest.mark.parametrize("deepspeed", [None])
def test_two_nodes_train_like_one_node_with_two_processes(parts, one_node, tmp_path, deepspeed):
    ref_logs, ref_records, ref_out = one_node(deepspeed)
    out = tmp_path / "run"
    codes = wait_all(two_nodes(parts, out, tmp_path, deepspeed))
    assert codes == [0, 0], log_text(tmp_path, 0)[-3000:] + log_text(tmp_path, 1)[-3000:]
    assert "global batch 8 = 4 per device x 1 processes x 2 nodes x 1 accumulation" in log_text(tmp_path, 0)
    assert "2 node(s) x 1 processes; launch static, node 1" in log_text(tmp_path, 1)

    logs = losses(out)
    assert [h["step"] for h in logs] == list(range(1, STEPS + 1))
    for got, want in zip(logs, ref_logs, strict=True):
        assert abs(got["loss"] - want["loss"]) <= 1e-6, (got, want)
    records = [json.loads((out / "rank_records" / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["batches"] for r in records] == [r["batches"] for r in ref_records]  # same samples per rank
    assert records[0]["trainable_digest"] == ref_records[0]["trainable_digest"]
    final, ref_final = load_file(out / "llava_adapters.safetensors"), load_file(ref_out / "llava_adapters.safetensors")
    assert final.keys() == ref_final.keys()
    assert all(final[k].equal(ref_final[k]) for k in final)  # identical final adapters


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_max_restarts_resumes_the_newest_checkpoint_and_matches_an_uninterrupted_run(parts, one_node, tmp_path):
    """Under c10d rendezvous (RDZV_ENDPOINT, the SLURM script's path; the static launch: the two-node test)."""
    ref_logs, _, _ = one_node(None)
    out = tmp_path / "run"
    env = {**node_env(parts, out, 0, free_port(), nnodes=1), "NUM_GPUS": "2", "BATCH": "4", "MAX_RESTARTS": "1"}
    env.update(RDZV_ENDPOINT=f"127.0.0.1:{free_port()}", RDZV_ID="restart-test")
    proc = start(env, tmp_path / "node0.log")
    try:
        wait_for(out / "checkpoint-2" / "trainer_state.json", [proc])
        os.kill(worker_pids(proc.pid)[-1], signal.SIGKILL)
        assert proc.wait(timeout=300) == 0, log_text(tmp_path, 0)[-4000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log_text(tmp_path, 0)
    assert "launch c10d rendezvous at 127.0.0.1:" in text
    assert "elastic restart 1: resuming from" in text and "/checkpoint-" in text
    logs = losses(out)
    assert [h["step"] for h in logs] == list(range(1, STEPS + 1))
    for got, want in zip(logs, ref_logs, strict=True):
        assert abs(got["loss"] - want["loss"]) <= 1e-6, (got, want)

    # the restart was allowed into its own OUTPUT; a second, independent run is still refused, in one line
    second = subprocess.run(["bash", "scripts/finetune_asymlora.sh"], cwd=ROOT, capture_output=True, text=True,
                            env={**env, "MAX_RESTARTS": "0", "NUM_GPUS": "1", "BATCH": "8"}, timeout=300)
    assert second.returncode == 2
    assert "already holds a run" in second.stderr and "Traceback" not in second.stderr


def test_a_killed_process_ends_the_job_and_node_local_disks_resume(parts, one_node, tmp_path):
    """SAVE_ON_EACH_NODE=1, each node its own OUTPUT (separate disks). SIGKILL of node 1's worker after checkpoint-2:
    node 0's worker names rank 1 and its launcher exits non-zero well within DIST_TIMEOUT=60 s, nothing is left
    running. Relaunched with --resume_from_checkpoint last, the two nodes agree on a checkpoint and finish like the
    uninterrupted run."""
    ref_logs, _, ref_out = one_node(None)
    disks = [tmp_path / "disk0" / "run", tmp_path / "disk1" / "run"]
    first = two_nodes(parts, None, tmp_path, env={"SAVE_ON_EACH_NODE": "1", "DIST_TIMEOUT": "60"}, outs=disks)
    try:
        for disk in disks:
            wait_for(disk / "checkpoint-2" / "trainer_state.json", first)
        victims = worker_pids(first[1].pid)
        everyone = victims + worker_pids(first[0].pid)
        assert len(victims) == 1 and len(everyone) == 2
        os.kill(victims[0], signal.SIGKILL)
        t0 = time.monotonic()
        code0 = first[0].wait(timeout=90)
        elapsed = time.monotonic() - t0
        code1 = first[1].wait(timeout=30)
    finally:
        for p in first:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    print(f"node 0 exited {elapsed:.1f} s after the kill")
    assert code0 != 0 and code1 != 0
    assert elapsed < 60
    assert "lost rank 1 (no heartbeat)" in log_text(tmp_path, 0)
    assert "DIST_TIMEOUT=60s" in log_text(tmp_path, 0)
    assert not [p for p in everyone if os.path.exists(f"/proc/{p}") and _state(p) != "Z"]  # no process left
    for disk in disks:  # each disk holds what its node needs: weights, trainer state, its own RNG state
        assert {"llava_adapters.safetensors", "trainer_state.json", "optimizer.pt"} <= set(os.listdir(disk / "checkpoint-2"))
    assert (disks[1] / "checkpoint-2" / "rng_state_1.pth").exists()
    assert not (disks[1] / "checkpoint-2" / "rng_state_0.pth").exists()

    resume = {"SAVE_ON_EACH_NODE": "1", "EXTRA_ARGS": f"--max_steps {STEPS} --warmup_ratio 0 --resume_from_checkpoint last"}
    codes = wait_all(two_nodes(parts, None, tmp_path, env=resume, outs=disks))
    assert codes == [0, 0], log_text(tmp_path, 0)[-3000:] + log_text(tmp_path, 1)[-3000:]
    for disk in disks:
        logs = losses(disk)
        for got, want in zip(logs, ref_logs, strict=True):
            assert abs(got["loss"] - want["loss"]) <= 1e-6, (disk, got, want)
    a, b = (load_file(d / "llava_adapters.safetensors") for d in disks)
    ref = load_file(ref_out / "llava_adapters.safetensors")
    assert all(a[k].equal(b[k]) and a[k].equal(ref[k]) for k in ref)


def test_the_hostfile_launch_runs_on_localhost(parts, one_node, tmp_path):
    """HOSTFILE through DeepSpeed's launcher (NO_SSH=1: no ssh to localhost), ZeRO-2 2 processes: the losses of
    torchrun's 2-process DDP run (fp32; ZeRO-2 reduces the same gradients in other buckets, so equal to rounding)."""
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("# host slots\nlocalhost slots=2\n")
    out = tmp_path / "run"
    env = {**node_env(parts, out, 0, free_port(), nnodes=1, deepspeed="zero2"), "HOSTFILE": str(hostfile),
           "NO_SSH": "1", "NNODES": "", "NUM_GPUS": "", "BATCH": "4"}
    proc = subprocess.run(["bash", "scripts/finetune_asymlora.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "1 node(s) x 2 processes; launch DeepSpeed hostfile" in proc.stdout
    assert "= 4 per device x 2 processes x 1 nodes x 1 accumulation" in proc.stdout
    ref_logs, _, _ = one_node(None)
    diffs = [abs(got["loss"] - want["loss"]) for got, want in zip(losses(out), ref_logs, strict=True)]
    print(f"hostfile ZeRO-2 vs torchrun DDP: largest loss difference {max(diffs):.2e}")
    assert max(diffs) <= 1e-5


def test_slurm_script_dry_run_prints_what_each_node_runs(tmp_path):
    """sbatch's environment and a stand-in scontrol: srun one task per node, torchrun with c10d rendezvous at the
    allocation's first node, 8 processes per node, the global batch kept at 128."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "scontrol").write_text('#!/bin/sh\n# stand-in: scontrol show hostnames LIST\necho "$3" | tr , "\\n"\n')
    (fake / "scontrol").chmod(0o755)
    (tmp_path / "vicuna").mkdir()
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "DRY_RUN": "1", "SLURM_JOB_NODELIST": "gpu07,gpu08",
           "SLURM_JOB_NUM_NODES": "2", "SLURM_GPUS_ON_NODE": "8", "SLURM_JOB_ID": "4242", "PYTHON": sys.executable,
           "MODEL": str(tmp_path / "vicuna"), "BATCH": "4", "OUTPUT": str(tmp_path / "out"), "HAS_CUDA": "1",
           "MAX_RESTARTS": "2"}
    proc = subprocess.run(["bash", "scripts/slurm/finetune.sbatch"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "srun: srun --nodes 2 --ntasks-per-node 1 --kill-on-bad-exit=1 bash scripts/finetune_asymlora.sh"
    command = next(line for line in lines if line.startswith("command:"))
    for part in ("-m torch.distributed.run --nproc_per_node 8 --nnodes 2 --max_restarts 2 --rdzv_backend c10d "
                 "--rdzv_endpoint gpu07:29500 --rdzv_id 4242 -m llava.train.train", "--ddp_timeout 600",
                 "--per_device_train_batch_size 4 --gradient_accumulation_steps 2"):
        assert part in command
    assert "global batch 128 = 4 per device x 8 processes x 2 nodes x 2 accumulation" in proc.stdout
