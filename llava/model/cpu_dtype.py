"""The dtype a CPU run computes in: bf16 only where this CPU runs it natively.

A CPU without native bf16 (AVX2 only: most laptops without AVX-512 BF16 or AMX) emulates every bf16 matmul, many
times slower than fp32, so a recipe that trains "bf16 on the CPU" for speed is fastest there in fp32. Measured, not
read from CPU flags: a bf16 matmul against an fp32 one of the small preset's shape, which also honours oneDNN's
ISA cap (ONEDNN_MAX_CPU_ISA).

python -m llava.model.cpu_dtype [WHAT]   prints bf16 or fp32, and on stderr the line saying why (scripts/finetune.sh)
"""

from __future__ import annotations

import functools
import sys
import time

import torch

NATIVE_WITHIN = 2.0  # a bf16 matmul at most this many times an fp32 one's time counts as native


def _matmul_seconds(dtype: torch.dtype, repeats: int = 5) -> float:
    a = torch.randn(512, 576).to(dtype)
    b = torch.randn(576, 1536).to(dtype)
    a @ b  # the first call builds the kernel
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return time.perf_counter() - start


@functools.lru_cache(maxsize=1)
def bf16_slowdown() -> float:
    """A bf16 matmul's time over an fp32 one's on this CPU (about 1 or less where native)."""
    return _matmul_seconds(torch.bfloat16) / max(_matmul_seconds(torch.float32), 1e-9)


def cpu_compute_dtype() -> str:
    """"bf16" where this CPU runs it natively, else "fp32"."""
    return "bf16" if bf16_slowdown() <= NATIVE_WITHIN else "fp32"


def compute_dtype_line(what: str) -> str:
    """One line saying which dtype `what` uses on this CPU and why."""
    dtype = cpu_compute_dtype()
    reason = "native here" if dtype == "bf16" else "no native bf16 here"
    return f"{what} computes in {dtype} on this CPU ({reason}: a bf16 matmul takes {bf16_slowdown():.1f}x an fp32 one)"


if __name__ == "__main__":
    print(compute_dtype_line(sys.argv[1] if len(sys.argv) > 1 else "this run"), file=sys.stderr)
    print(cpu_compute_dtype())
