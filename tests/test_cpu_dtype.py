"""CPU runs compute in bf16 only where the CPU runs it natively: with oneDNN capped at AVX2 (no native bf16, as most
laptops) a bf16 matmul is emulated, many times slower, and the kit's runs choose fp32, saying so in one line."""

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
