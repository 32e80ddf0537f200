"""End to end: the finetune scripts on the tiny preset (CPU) finish, lower the loss, report router load."""

import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(name, tmp_path, **env):
    out = tmp_path / name
    full_env = {**os.environ, "MODEL": "tiny", "OUTPUT": str(out), "EPOCHS": "1", "PYTHON": sys.executable,
                "SAVE_STEPS": "20", "LOGGING_STEPS": "5", "EXTRA_ARGS": "--max_steps 80", **env}
    proc = subprocess.run(["bash", f"scripts/{name}.sh"], cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # no Python warning at all: none from our code, and none that our flags, config or defaults provoke elsewhere
    warnings = [line for line in proc.stderr.splitlines() if re.search(r"\b[A-Z]\w*Warning: ", line)]
    assert not warnings, warnings
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    losses = [h["loss"] for h in history if "loss" in h]
    return proc.stdout, proc.stderr, losses, out


@pytest.mark.slow
# the other two scripts differ only in their presets: their command lines train in tests/test_scheme_matrix.py
@pytest.mark.parametrize("name", ["finetune_asymlora", "finetune_mixlora"])
def test_finetune_script_on_tiny(tmp_path, name):
    output, stderr, losses, out = run_script(name, tmp_path)
    assert len(losses) >= 4 and losses[-1] < losses[0] * 0.7, losses
    # a log file (not a terminal): no progress bar, one line per logged step, values as numbers; no third-party
    # warning or error line
    assert "\r" not in output + stderr and not re.search(r"\d+/\d+ \[\d\d:\d\d", output + stderr)
    logged = [line for line in output.splitlines() if line.startswith("{'loss': ")]
    assert len(logged) == 16 and "'loss': '" not in output  # every 5 steps, values as numbers
    assert not [line for line in (output + stderr).splitlines() if re.search(r"warn|error|failed", line, re.I)]
    assert (out / "plots" / "loss.png").stat().st_size > 10_000
    checkpoints = sorted(out.glob("checkpoint-*"))
    assert (out / "llava_adapters.safetensors").exists() and checkpoints, list(out.iterdir())
    assert all((c / "llava_adapters.json").exists() and (c / "llava_adapters.safetensors").exists() for c in checkpoints)
    assert "router load per task" in output
    for task in ("shape", "color", "yesno"):
        assert f"| {task} |" in output
        assert f"router_load/{task}/" in json.dumps(history_of(out)[-2])  # also what wandb/tensorboard get
    assert (out / "plots" / "router_load.png").stat().st_size > 10_000


def history_of(out):
    return json.loads((out / "trainer_state.json").read_text())["log_history"]


def _check_only(tmp_path, **env):
    """Run finetune.sh up to its path checks (a MODEL that is not there fails before anything heavy starts)."""
    data = tmp_path / "d.json"
    data.write_text("[]")
    full_env = {**os.environ, "OUTPUT": str(tmp_path / "o"), "PYTHON": sys.executable, "DATA": str(data), **env}
    return subprocess.run(["bash", "scripts/finetune_asymlora.sh"], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=60)


def test_script_takes_a_gguf_model_file_and_empty_values_mean_none(tmp_path):
    proc = _check_only(tmp_path, MODEL=str(tmp_path / "lm.gguf"), VISION_TOWER="", PROJECTOR="", DEEPSPEED="")
    assert proc.returncode == 2 and "a .gguf language model file" in proc.stderr  # checked as a file, not a dir
    proc = _check_only(tmp_path, MODEL=str(tmp_path), VISION_TOWER="", PROJECTOR="", DEEPSPEED="", GLOBAL_BATCH="100",
                       BATCH="16")
    assert "VISION_TOWER" not in proc.stderr and "PROJECTOR" not in proc.stderr  # empty: none, not the 7B default
    assert "GLOBAL_BATCH=100 is not a multiple of BATCH=16 x NUM_GPUS=1" in proc.stderr


def test_dry_run_prints_the_launch_with_nodes_in_the_global_batch(tmp_path):
    data = tmp_path / "d.json"
    data.write_text("[]")
    env = {**os.environ, "DRY_RUN": "1", "MODEL": str(tmp_path / "vicuna"), "DATA": str(data), "NUM_GPUS": "4",
           "NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "10.0.0.1", "BATCH": "4", "GLOBAL_BATCH": "128",
           "PYTHON": sys.executable, "HAS_CUDA": "0"}
    proc = subprocess.run(["bash", "scripts/finetune_asymlora.sh"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "global batch 128 = 4 per device x 4 processes x 2 nodes x 4 accumulation" in proc.stdout
    command = next(line for line in proc.stdout.splitlines() if line.startswith("command: "))
    assert "--nproc_per_node 4 --nnodes 2 --max_restarts 0 --node_rank 1 --master_addr 10.0.0.1" in command
    assert "--gradient_accumulation_steps 4" in command and "--ddp_timeout 600" in command
    assert f"missing: MODEL={tmp_path}/vicuna" in proc.stderr  # reported, not fatal, in a dry run
    # planned on a machine without a GPU: the command is still the GPU one, never a silent switch to the CPU
    assert "--use_cpu" not in command and "--tf32 True" in command
    assert "no CUDA device on this machine" in proc.stderr


def _dry_run_batch(**env):
    full = {**os.environ, "DRY_RUN": "1", "MODEL": "tiny", "PYTHON": sys.executable, "HAS_CUDA": "0", **env}
    proc = subprocess.run(["bash", "scripts/finetune_asymlora.sh"], cwd=ROOT, env=full, capture_output=True,
                          text=True, timeout=60)
    said = re.search(r"global batch (\d+) = (\d+) per device x (\d+) processes x (\d+) nodes x (\d+) accumulation",
                     proc.stdout)
    return proc, said and tuple(int(g) for g in said.groups())


def test_the_tiny_preset_derives_its_global_batch_from_the_processes_unless_set():
    assert _dry_run_batch()[1] == (16, 16, 1, 1, 1)
    assert _dry_run_batch(NUM_GPUS="2")[1] == (32, 16, 2, 1, 1)  # no accumulation: BATCH x processes
    assert _dry_run_batch(NUM_GPUS="2", BATCH="4")[1] == (8, 4, 2, 1, 1)
    assert _dry_run_batch(NUM_GPUS="2", NNODES="2", BATCH="2")[1] == (8, 2, 2, 2, 1)
    # a global batch the user set is kept; one that cannot be is refused with advice that works
    assert _dry_run_batch(NUM_GPUS="2", BATCH="4", GLOBAL_BATCH="32")[1] == (32, 4, 2, 1, 4)
    proc, said = _dry_run_batch(NUM_GPUS="2", GLOBAL_BATCH="16")
    assert proc.returncode == 2 and said is None
    assert proc.stderr.strip() == ("error: GLOBAL_BATCH=16 is not a multiple of BATCH=16 x NUM_GPUS=2 x NNODES=1; "
                                   "set BATCH=8, set GLOBAL_BATCH to a multiple of 32, or set GRAD_ACCUM")
    assert _dry_run_batch(NUM_GPUS="2", GLOBAL_BATCH="16", BATCH="8")[1] == (16, 8, 2, 1, 1)


def _device_run(tmp_path, **env):
    data = tmp_path / "d.json"
    data.write_text("[]")
    (tmp_path / "vicuna").mkdir(exist_ok=True)
    full = {**os.environ, "MODEL": str(tmp_path / "vicuna"), "VISION_TOWER": "", "PROJECTOR": "", "DEEPSPEED": "",
            "DATA": str(data), "OUTPUT": str(tmp_path / "o"), "PYTHON": sys.executable, "HAS_CUDA": "0", **env}
    return subprocess.run(["bash", "scripts/finetune_asymlora.sh"], cwd=ROOT, env=full, capture_output=True,
                          text=True, timeout=60)


def test_a_gpu_recipe_without_a_gpu_stops_with_one_line(tmp_path):
    proc = _device_run(tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: no CUDA device on this machine for a GPU run (MODEL={tmp_path}/vicuna); launch it on a GPU node, or "
        "set DEVICE=cpu to train on the CPU"]


@pytest.mark.parametrize("env,cpu", [({"DEVICE": "cpu"}, True), ({"MODEL": "tiny"}, True),
                                     ({"MODEL": "tiny", "HAS_CUDA": "1"}, False), ({"HAS_CUDA": "1"}, False)])
def test_the_cpu_only_when_asked_or_for_the_small_presets_without_a_gpu(tmp_path, env, cpu):
    proc = _device_run(tmp_path, DRY_RUN="1", **env)
    assert proc.returncode == 0, proc.stderr
    command = next(line for line in proc.stdout.splitlines() if line.startswith("command: "))
    assert ("--use_cpu True" in command) == cpu


def test_an_unknown_device_is_refused(tmp_path):
    proc = _device_run(tmp_path, DEVICE="tpu")
    assert proc.returncode == 2 and "DEVICE must be cuda or cpu, got 'tpu'" in proc.stderr
