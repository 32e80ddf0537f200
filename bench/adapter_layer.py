"""Wrapped-linear forward+backward at LLaMA-7B MLP shapes, every variant side by side in one run.

python bench/adapter_layer.py [--tokens 256] [--reps 15] [--device cpu|cuda]

Variants: frozen base only, lora r=32, asymlora r=32 E=3 (fused), moe_lora E=3, mixlora (pool 32, r=8), and the
adapter path alone for fused asymlora vs the per-expert loop reference (llava/adapters/reference.py, the way the
paper's code computes it). Runs are interleaved: each round times every variant at both shapes once, in a shuffled
order, and a ratio is the median over rounds of the per-round ratio (both shapes summed), so the machine's drifts
cancel. The last printed line is one JSON object of these median time ratios:
  asym_over_lora, moe_over_lora, mix_over_lora  whole wrapped layer (frozen base included)
  loop_over_fused                               adapter path delta(x) alone, loop reference / fused asymlora
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time

import torch
from torch import nn

from llava.adapters.layer import AdapterLinear
from llava.adapters.reference import loop_delta
from llava.adapters.state import RoutingState

SHAPES = [(4096, 11008), (11008, 4096)]


def make(scheme, base, r=32, experts=1):
    layer = AdapterLinear(base, scheme, r=r, alpha=2 * r, num_experts=experts, state=RoutingState())
    with torch.no_grad():
        layer.lora_B.normal_(std=0.01)
    return layer.train()


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device):
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def step_whole(layer, x):
    def run():
        layer.state.begin_batch()  # as the trainer does per batch: balance-loss records start afresh
        x.grad = None
        layer.zero_grad(set_to_none=True)
        layer(x).sum().backward()
    return run


def step_base(base, x):
    def run():
        x.grad = None
        base(x).sum().backward()
    return run


def step_fused_delta(layer, x):
    def run():
        x.grad = None
        layer.zero_grad(set_to_none=True)
        layer.adapter_delta(x)[0].sum().backward()
    return run


def step_loop_delta(layer, x):
    def run():
        x.grad = None
        layer.zero_grad(set_to_none=True)
        gates = layer.router(x)[0].to(x.dtype)
        loop_delta(layer, x, gates).sum().backward()
    return run


def build_variants(d_in, d_out, tokens, device, dtype):
    torch.manual_seed(0)
    base = nn.Linear(d_in, d_out, bias=False).to(device, dtype)
    base.requires_grad_(False)
    x = torch.randn(1, tokens, d_in, device=device, dtype=dtype, requires_grad=True)
    asym = make("asymlora", base, experts=3).to(device, dtype)
    return {
        "base": step_base(base, x),
        "lora": step_whole(make("lora", base).to(device, dtype), x),
        "asymlora": step_whole(asym, x),
        "moe_lora": step_whole(make("moe_lora", base, experts=3).to(device, dtype), x),
        "mixlora": step_whole(make("mixlora", base, r=8, experts=32).to(device, dtype), x),
        "asym_delta_fused": step_fused_delta(asym, x),
        "asym_delta_loop": step_loop_delta(asym, x),
    }


def run_rounds(shapes, tokens, reps, device, dtype):
    """times[shape][variant] = list over rounds. Every round runs every (shape, variant) once, in a shuffled order,
    so slow drifts of the machine hit all variants of a round alike."""
    variants = {shape: build_variants(*shape, tokens, device, dtype) for shape in shapes}
    jobs = [(shape, name) for shape in shapes for name in variants[shape]]
    for shape, name in jobs:  # warm-up
        variants[shape][name]()
    times = {shape: {name: [] for name in variants[shape]} for shape in shapes}
    rng = random.Random(0)
    for _ in range(reps):
        rng.shuffle(jobs)
        for shape, name in jobs:
            times[shape][name].append(timed(variants[shape][name], device))
    return times


def paired_ratio(times, a, b):
    """Median over rounds of (a's time / b's time) in that round, both summed over the shapes."""
    shapes = list(times)
    rounds = len(times[shapes[0]][a])
    ratios = [sum(times[s][a][i] for s in shapes) / sum(times[s][b][i] for s in shapes) for i in range(rounds)]
    return round(statistics.median(ratios), 3)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--reps", type=int, default=25)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    machine = torch.cuda.get_device_name() if args.device == "cuda" else f"{platform.processor() or 'cpu'}, " \
        f"{torch.get_num_threads()} threads"
    print(f"device={args.device} ({machine}) dtype={dtype} tokens={args.tokens} reps={args.reps} torch={torch.__version__}")
    times = run_rounds(SHAPES, args.tokens, args.reps, args.device, dtype)
    for (d_in, d_out), per_variant in times.items():
        print(f"\n{d_in}->{d_out}: median ms per forward+backward")
        for name, t in per_variant.items():
            print(f"  {name:18s} {1000 * statistics.median(t):9.2f}")

    result = {"asym_over_lora": paired_ratio(times, "asymlora", "lora"),
              "moe_over_lora": paired_ratio(times, "moe_lora", "lora"),
              "mix_over_lora": paired_ratio(times, "mixlora", "lora"),
              "lora_over_base": paired_ratio(times, "lora", "base"),
              "loop_over_fused": paired_ratio(times, "asym_delta_loop", "asym_delta_fused"),
              "device": args.device, "dtype": str(dtype).replace("torch.", ""), "tokens": args.tokens,
              "reps": args.reps}
    print()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
