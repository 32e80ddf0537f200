"""Memory, compute and time planner: `python -m llava.train.plan --model 7b --scheme asymlora --zero 3 --gpus 8`.

Parameter counts come from the real architecture: LLaVA-1.5 (CLIP ViT-L/14-336 + projector + Vicuna) built on the
meta device with the adapters injected, so they equal a real model's exactly. Bytes follow the ZeRO paper's
accounting. With `--data FILE` (its tokens counted) or `--recipe NAME` (published sizes, assumed lengths) it also
estimates training and evaluation time and GPU-hours on `--gpu` (train/estimate.py). The arithmetic is written out
in docs/planning.md.
"""

from __future__ import annotations

import argparse

from transformers import LlavaConfig

from llava.train import estimate
from llava.train.plan_model import (
    GIB,
    LLAMA,
    SCHEMES,
    Counts,
    activations,
    bytes_moved,
    count,
    flops_share,
    memory_per_gpu,
    meta_model,
)


def compare_zero(model="7b", scheme="asymlora", gpus=8, bits=16, batch=16, seq=2048, r=None, global_batch=128,
                 gpu_memory_gib=80.0) -> dict:
    """ZeRO-2 against ZeRO-3 for this run: memory per GPU, bytes moved per step, and the choice. The base is frozen,
    so ZeRO-3 saves only the replicated frozen weights and pays for gathering them at every use: ZeRO-2 wherever it
    fits (10% of the GPU kept free for fragmentation and the framework), else ZeRO-3."""
    grad_accum = max(1, global_batch // (batch * gpus))
    llava = meta_model(model, scheme, r)
    c = count(llava)
    act = activations(llava.config, batch, seq, True, True)
    out = {}
    for zero in (2, 3):
        memory = sum(memory_per_gpu(c, zero, gpus, bits).values()) + act["decoder layers"] + act["logits"]
        out[zero] = {"memory_gib": memory / GIB, "bytes_moved_gb": bytes_moved(c, zero, gpus, grad_accum, bits) / 1e9}
    fits2 = out[2]["memory_gib"] <= 0.9 * gpu_memory_gib
    return {"zero2": out[2], "zero3": out[3], "grad_accum": grad_accum, "gpu_memory_gib": gpu_memory_gib,
            "choice": 2 if fits2 else 3}


def compare_report(cmp: dict, gpus: int) -> str:
    z2, z3 = cmp["zero2"], cmp["zero3"]
    why = (f"ZeRO-2 fits ({z2['memory_gib']:.1f} of {cmp['gpu_memory_gib']:g} GiB) and moves "
           f"{z3['bytes_moved_gb'] / max(z2['bytes_moved_gb'], 1e-9):.0f}x less" if cmp["choice"] == 2 else
           f"ZeRO-2 does not fit ({z2['memory_gib']:.1f} GiB > 90% of {cmp['gpu_memory_gib']:g} GiB)")
    if cmp["choice"] == 3 and z3["memory_gib"] > 0.9 * cmp["gpu_memory_gib"]:
        why += "; nor does ZeRO-3: lower --batch (activations dominate) or offload (zero3_offload.json)"
    return "\n".join([
        f"ZeRO-2 vs ZeRO-3 on {gpus} GPUs of {cmp['gpu_memory_gib']:g} GiB ({cmp['grad_accum']} micro-step(s) per "
        "optimizer step; memory = model state + checkpointed activations + logits):",
        f"  ZeRO-2: {z2['memory_gib']:6.1f} GiB per GPU, {z2['bytes_moved_gb']:8.2f} GB sent per GPU per step",
        f"  ZeRO-3: {z3['memory_gib']:6.1f} GiB per GPU, {z3['bytes_moved_gb']:8.2f} GB sent per GPU per step",
        f"  use configs/deepspeed/zero{cmp['choice']}.json: {why}"])


def plan(model="7b", scheme="asymlora", zero=3, gpus=8, bits=16, batch=16, seq=2048, r=None) -> dict:
    llava = meta_model(model, scheme, r)
    c = count(llava)
    mem = memory_per_gpu(c, zero, gpus, bits)
    act_ckpt = activations(llava.config, batch, seq, True, True)
    act_full = activations(llava.config, batch, seq, False, True)
    return {"counts": c, "memory": mem, "activations_checkpointed": act_ckpt, "activations_full": act_full,
            "adapter_flops_share": flops_share(c, llava.config, seq)}


def sizes(c: Counts, cfg: LlavaConfig) -> estimate.Sizes:
    text = cfg.text_config
    return estimate.Sizes(lm=c.frozen_lm - text.vocab_size * text.hidden_size, adapters=c.adapters,
                          projector=c.projector, vision=c.frozen_vision, hidden=text.hidden_size,
                          layers=text.num_hidden_layers)


def data_tokens(args):
    if args.data:
        from llava.data.preprocess import load_tokenizer
        from llava.data.token_count import count_tokens

        tokenizer = load_tokenizer(args.tokenizer) if args.tokenizer else None
        return count_tokens(args.data, tokenizer, sample=args.sample)
    return estimate.assumed_tokens(args.recipe)


def report(p: dict, args) -> str:
    c: Counts = p["counts"]
    lines = [f"LLaVA-1.5-{args.model} + {args.scheme}" + (f" r={args.r}" if args.r else "") +
             f", ZeRO-{args.zero}, {args.gpus} GPUs, LM in {args.bits} bits, batch {args.batch} x {args.seq} tokens",
             f"parameters: LM {c.frozen_lm:,} + vision tower {c.frozen_vision:,} frozen; trainable {c.trainable:,} "
             f"(adapters {c.adapters:,} + projector {c.projector:,}) = {100 * c.trainable / (c.trainable + c.frozen_lm + c.frozen_vision):.2f}%"]
    total = 0.0
    for k, v in p["memory"].items():
        lines.append(f"  {k:<18} {v / GIB:8.2f} GiB per GPU")
        total += v
    lines.append(f"  {'model state':<18} {total / GIB:8.2f} GiB per GPU")
    for label, key in (("with checkpointing", "activations_checkpointed"), ("without checkpointing", "activations_full")):
        act = p[key]
        lines.append(f"activations {label}: decoder {act['decoder layers'] / GIB:.2f} GiB + logits "
                     f"{act['logits'] / GIB:.2f} GiB per micro-batch")
    lines.append(f"adapter share of training FLOPs: {100 * p['adapter_flops_share']:.2f}%")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=sorted(LLAMA), default="7b")
    ap.add_argument("--scheme", choices=sorted(SCHEMES), default="asymlora")
    ap.add_argument("--r", type=int, default=None, help="override the scheme's rank (alpha = 2r)")
    ap.add_argument("--zero", type=int, choices=[0, 1, 2, 3], default=3)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--bits", type=int, choices=[4, 8, 16], default=16)
    ap.add_argument("--batch", type=int, default=16, help="per-device micro-batch (LLaVA-1.5: 16)")
    ap.add_argument("--seq", type=int, default=2048, help="sequence length (model_max_length)")
    ap.add_argument("--gpu-memory", type=float, default=80.0, help="GiB per GPU, for the ZeRO-2 / ZeRO-3 choice")
    time = ap.add_argument_group("time and cost (with --data or --recipe)")
    time.add_argument("--data", default=None, help="a training file or mixture spec: its tokens are counted")
    time.add_argument("--tokenizer", default=None, help="count with this tokenizer (a Vicuna dir); default: characters")
    time.add_argument("--sample", type=int, default=20_000, help="records tokenized (the total is scaled up)")
    time.add_argument("--recipe", choices=sorted(estimate.ASSUMED), default=None,
                      help="no data yet: the recipe's published size and an assumed length")
    time.add_argument("--gpu", choices=sorted(estimate.GPUS), default="h100")
    time.add_argument("--mfu", type=float, default=estimate.MFU)
    time.add_argument("--epochs", type=float, default=1.0)
    time.add_argument("--global-batch", type=int, default=128)
    time.add_argument("--schemes", default=None, help="comma list of schemes to estimate (default --scheme)")
    time.add_argument("--benchmarks", default="", help="comma list of mme,gqa,textvqa,vizwiz,mmvet to add")
    args = ap.parse_args(argv)
    print(report(plan(args.model, args.scheme, args.zero, args.gpus, args.bits, args.batch, args.seq, args.r), args))
    if args.gpus > 1:
        cmp = compare_zero(args.model, args.scheme, args.gpus, args.bits, args.batch, args.seq, args.r,
                           args.global_batch, args.gpu_memory)
        print(compare_report(cmp, args.gpus))
    if args.data or args.recipe:
        schemes = args.schemes.split(",") if args.schemes else [args.scheme]
        unknown = [b for b in args.benchmarks.split(",") if b and b not in estimate.BENCHMARKS]
        if unknown or any(s not in SCHEMES for s in schemes):
            ap.error(f"unknown benchmarks {unknown} or schemes {schemes} (schemes: {sorted(SCHEMES)})")
        per_scheme = {}
        for name in dict.fromkeys(schemes):  # each scheme once (a table trains several runs of one scheme)
            llava = meta_model(args.model, name, args.r)
            per_scheme[name] = sizes(count(llava), llava.config)
        text = estimate.time_report(per_scheme, data_tokens(args), estimate.GPUS[args.gpu], args.gpus,
                                       [b for b in args.benchmarks.split(",") if b], args.epochs, args.mfu,
                                       args.global_batch)
        print(text)


if __name__ == "__main__":
    main()
