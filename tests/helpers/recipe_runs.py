"""Run scripts/finetune_asymlora.sh the way a user does, on the parts-built model the tests write (CPU, gloo)."""

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llava.checkpoint import load_checkpoint_model
from tests.helpers.model_parts import write_mixture, write_parts

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# DeepSpeed's compiled CPU ops (make test builds them first); another torch (make test-lowest) keeps its own
EXTENSIONS = os.environ.get("TORCH_EXTENSIONS_DIR") or os.path.join(ROOT, ".torch_extensions")
GLOBAL_BATCH = 8


def free_port() -> int:
    """A port nothing listens on now: test files run in parallel workers, so fixed launcher ports could collide."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recipe_parts(tmp_path_factory, per_task: int = 8) -> dict[str, str]:
    """CLIP dir, Llama dir, stage-1 projector, original-LLaVA dir and a 3-task mixture of 3 x per_task samples (a
    module fixture's body; per_task 16: 48 samples, one epoch of 6 steps at global batch 8)."""
    pytest.importorskip("deepspeed", reason="the deepspeed extra is part of `make install` (dev)")
    root = tmp_path_factory.mktemp("parts")
    paths = write_parts(str(root))
    paths["data"] = write_mixture(str(root / "data"), per_task=per_task)
    paths["images"] = str(root / "data")
    paths["root"] = str(root)
    return paths


def finetune_env(parts, out, nproc=1, deepspeed=None, batch=None, grad_accum=None, steps=3, extra="", model=None,
                 tower=True, projector=True, balance="hydra", env=None) -> dict[str, str]:
    """The environment a user sets for scripts/finetune_asymlora.sh (fp32, dropout 0, every rank's samples recorded)."""
    base = {**os.environ, "MODEL": model or parts["lm"], "VISION_TOWER": parts["clip"] if tower else "",
            "PROJECTOR": parts["projector"] if projector else "", "DATA": parts["data"],
            "IMAGE_FOLDER": parts["images"], "OUTPUT": str(out), "PYTHON": sys.executable, "NUM_GPUS": str(nproc),
            "BATCH": str(batch or GLOBAL_BATCH // nproc), "GLOBAL_BATCH": str(GLOBAL_BATCH), "DROPOUT": "0",
            "PRECISION": "fp32", "WORKERS": "0", "SAVE_STEPS": "2", "LOGGING_STEPS": "1",
            "DEEPSPEED": f"configs/deepspeed/{deepspeed}.json" if deepspeed else "",
            "EXTRA_ARGS": f"--max_steps {steps} --warmup_ratio 0 --record_ranks True {extra}",
            "DS_ACCELERATOR": "cpu", "TORCH_EXTENSIONS_DIR": EXTENSIONS,
            "MASTER_PORT": str(free_port()), "BALANCE_LOSS": balance, "DEVICE": "cpu"}
    if grad_accum:
        base["GRAD_ACCUM"] = str(grad_accum)
    return {**base, **(env or {})}


def finetune(parts, out, nproc=1, check=True, **settings):
    """One run of the script as a user launches it; returns (logged steps, per-rank records, stdout)."""
    proc = subprocess.run(["bash", "scripts/finetune_asymlora.sh"], cwd=ROOT, capture_output=True, text=True,
                          env=finetune_env(parts, out, nproc, **settings), timeout=900)
    if not check:
        return proc
    assert proc.returncode == 0, proc.stdout[-3000:] + "\n".join(failure_lines(proc.stderr))
    return run_results(out, nproc) + (proc.stdout,)


def run_results(out, nproc) -> tuple[list, list]:
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    records = [json.loads((out / "rank_records" / f"rank{r}.json").read_text()) for r in range(nproc)]
    return [h for h in history if "loss" in h], records


def dry_run_argv(env: dict, script: str = "finetune_asymlora.sh") -> tuple[list[str], str]:
    """(the arguments the script passes to llava.train.train, its stdout): its DRY_RUN command line in `env`."""
    proc = subprocess.run(["bash", f"scripts/{script}"], cwd=ROOT, env={**env, "DRY_RUN": "1"}, capture_output=True,
                          text=True, check=True)
    command = shlex.split(proc.stdout.split("command:", 1)[1])
    return command[command.index("llava.train.train") + 1:], proc.stdout


def launch_plan(plan: list[dict], nproc: int, plan_path) -> subprocess.CompletedProcess:
    """Train every run of `plan` ([{"name", "argv"}]) one after another in one launch of `nproc` processes
    (tests/scripts/train_plan.py): one start-up of torch, transformers and DeepSpeed per process for all of them."""
    plan_path.write_text(json.dumps(plan))
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port",
              str(free_port()), "-m", "tests.scripts.train_plan", str(plan_path)]
    proc = subprocess.run(launch, cwd=ROOT, capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "DS_ACCELERATOR": "cpu", "TORCH_EXTENSIONS_DIR": EXTENSIONS})
    assert proc.returncode == 0, proc.stdout[-3000:] + "\n".join(failure_lines(proc.stderr))
    return proc


def finetune_together(runs: dict[str, dict], nproc: int, plan_dir) -> dict[str, tuple]:
    """Several runs of `nproc` processes in one launch (launch_plan), each with the script's own arguments (its
    DRY_RUN command line in that run's environment); runs without DeepSpeed first (none follows a ZeRO-3 one that
    could leave its state behind). `runs`: name -> the script's environment (finetune_env's, or a test's own with
    OUTPUT and --record_ranks). Returns name -> (logged steps, per-rank records, the script's stdout)."""
    plan, stdouts = [], {}
    for name, env in sorted(runs.items(), key=lambda run: bool(run[1].get("DEEPSPEED"))):
        argv, stdouts[name] = dry_run_argv(env)
        plan.append({"name": name, "argv": argv})
    launch_plan(plan, nproc, plan_dir / "plan.json")
    return {name: run_results(Path(env["OUTPUT"]), nproc) + (stdouts[name],) for name, env in runs.items()}


def failure_lines(stderr: str, keep: int = 60) -> list[str]:
    """The end of each rank's traceback and the launcher's summary (the whole stderr is too long to read)."""
    lines = stderr.splitlines()
    errors = [i for i, line in enumerate(lines) if "Error" in line or "error:" in line]
    picked = sorted({j for i in errors for j in range(max(0, i - 3), i + 1)})
    return [lines[j] for j in picked][-keep:] + lines[-15:]


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


def node_env(parts, out, node_rank, port, nnodes=2, deepspeed=None, steps=6, extra="", env=None):
    """The environment of one "node" (one launch of the script, 1 process) of an NNODES job on localhost."""
    full = {**os.environ, "MODEL": parts["lm"], "VISION_TOWER": parts["clip"], "PROJECTOR": parts["projector"],
            "DATA": parts["data"], "IMAGE_FOLDER": parts["images"], "OUTPUT": str(out), "PYTHON": sys.executable,
            "NNODES": str(nnodes), "NODE_RANK": str(node_rank), "NUM_GPUS": "1", "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port), "BATCH": str(GLOBAL_BATCH // nnodes), "GLOBAL_BATCH": str(GLOBAL_BATCH),
            "DROPOUT": "0", "PRECISION": "fp32", "WORKERS": "0", "SAVE_STEPS": "2", "LOGGING_STEPS": "1",
            "SAVE_TOTAL_LIMIT": "10", "DEEPSPEED": f"configs/deepspeed/{deepspeed}.json" if deepspeed else "",
            "EXTRA_ARGS": f"--max_steps {steps} --warmup_ratio 0 --record_ranks True {extra}",
            "DS_ACCELERATOR": "cpu", "TORCH_EXTENSIONS_DIR": EXTENSIONS, "DEVICE": "cpu"}
    return {**full, **(env or {})}


def start(env, log_path):
    """Launch scripts/finetune_asymlora.sh in its own process group (so a test can end the whole tree)."""
    log = open(log_path, "w")
    return subprocess.Popen(["bash", "scripts/finetune_asymlora.sh"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_all(procs, timeout=600):
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            raise
    return codes


def losses(out):
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return [h for h in history if "loss" in h]


def worker_pids(launcher_pid: int) -> list[int]:
    """The training processes torchrun started (its children)."""
    out = subprocess.run(["pgrep", "-P", str(launcher_pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def wait_for(path, procs=(), timeout=300):
    """Until `path` exists; fails at once if one of `procs` ended first."""
    import time

    deadline = time.time() + timeout
    while not os.path.exists(path):
        ended = [p.args for p in procs if p.poll() is not None]
        if ended or time.time() > deadline:
            raise TimeoutError(f"{path} did not appear" + (" (a launch ended first)" if ended else f" in {timeout} s"))
        time.sleep(0.02)
