"""CPU runs compute in bf16 only where the CPU runs it natively: with oneDNN capped at AVX2 (no native bf16, as most
laptops) a bf16 matmul is emulated, many times slower, and the kit's runs and the training scripts on the CPU choose
fp32, saying so in one line; a run that asks for bf16 there is told."""

import os
import subprocess
import sys

SCRIPT = ("from llava.model.cpu_dtype import bf16_slowdown, compute_dtype_line, cpu_compute_dtype; "
          "print(cpu_compute_dtype(), round(bf16_slowdown(), 1)); print(compute_dtype_line('the demo'))")


def test_without_native_bf16_the_cpu_computes_in_fp32():
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    first, line = out.stdout.splitlines()
    dtype, slowdown = first.split()
    assert dtype == "fp32" and float(slowdown) > 2.0, out.stdout
    assert line.startswith("the demo computes in fp32 on this CPU (no native bf16 here: a bf16 matmul takes ")


def test_the_choice_follows_the_measured_speed(monkeypatch):
    from llava.model import cpu_dtype

    for slowdown, dtype in [(0.3, "bf16"), (1.9, "bf16"), (2.5, "fp32"), (40.0, "fp32")]:
        monkeypatch.setattr(cpu_dtype, "bf16_slowdown", lambda s=slowdown: s)
        assert cpu_dtype.cpu_compute_dtype() == dtype


def _cpu_dry_run(tmp_path, **env):
    (tmp_path / "lm").mkdir(exist_ok=True)
    (tmp_path / "d.json").write_text("[]")
    full = {**os.environ, "MODEL": str(tmp_path / "lm"), "VISION_TOWER": "", "PROJECTOR": "", "DEEPSPEED": "",
            "DEVICE": "cpu", "DATA": str(tmp_path / "d.json"), "DRY_RUN": "1", "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", "scripts/finetune_asymlora.sh"], cwd=os.path.dirname(os.path.dirname(__file__)),
                          env=full, capture_output=True, text=True, timeout=60)


def test_the_scripts_train_on_the_cpu_in_what_it_runs_fast(tmp_path):
    from llava.model.cpu_dtype import cpu_compute_dtype

    capped = _cpu_dry_run(tmp_path, ONEDNN_MAX_CPU_ISA="AVX2")
    assert capped.returncode == 0, capped.stderr
    assert "training on the CPU computes in fp32 on this CPU (no native bf16 here" in capped.stderr
    assert "--bf16" not in capped.stdout and "; fp32, DeepSpeed off;" in capped.stdout
    native = _cpu_dry_run(tmp_path)  # whatever this CPU does natively
    assert f"training on the CPU computes in {cpu_compute_dtype()} on this CPU" in native.stderr
    assert ("--bf16 True" in native.stdout) == (cpu_compute_dtype() == "bf16")
    asked = _cpu_dry_run(tmp_path, ONEDNN_MAX_CPU_ISA="AVX2", PRECISION="bf16")  # what the user sets is kept
    assert "--bf16 True" in asked.stdout and "computes in" not in asked.stderr


def test_bf16_asked_for_on_a_cpu_that_emulates_it_is_named(monkeypatch):
    from llava.train import checks

    args = type("Args", (), {"use_cpu": True, "bf16": True})()
    monkeypatch.setattr(checks, "cpu_compute_dtype", lambda: "fp32")
    monkeypatch.setattr(checks, "bf16_slowdown", lambda: 72.0)
    assert checks.slow_dtype_note(args) == ("note: --bf16 on this CPU is emulated (a bf16 matmul takes 72x an fp32 "
                                            "one): without --bf16 this run trains in fp32, many times faster")
    monkeypatch.setattr(checks, "cpu_compute_dtype", lambda: "bf16")
    assert checks.slow_dtype_note(args) is None
    args.bf16 = False
    monkeypatch.setattr(checks, "cpu_compute_dtype", lambda: "fp32")
    assert checks.slow_dtype_note(args) is None
