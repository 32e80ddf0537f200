"""Memory, compute and time planner: `python -m llava.train.plan --model 7b --scheme asymlora --zero 3 --gpus 8`.

Parameter counts come from the real architecture: LLaVA-1.5 (CLIP ViT-L/14-336 + projector + Vicuna) built on the
meta device with the adapters injected, so they equal a real model's exactly. Bytes follow the ZeRO paper's
accounting. With `--data FILE` (its tokens counted) or `--recipe NAME` (published sizes, assumed lengths) it also
estimates training and evaluation time and GPU-hours on `--gpu` (train/estimate.py). The arithmetic is written out
in docs/planning.md.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from llava.adapters import AdapterConfig, inject_adapters
from llava.adapters.config import ATTENTION, MLP
from llava.adapters.inject import adapter_modules
from llava.train import estimate

GIB = 1024**3
# Vicuna-v1.5 (Llama-2) sizes; LLaVA-1.5 adds <image> and pads the vocabulary to 32064.
LLAMA = {"7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32),
         "13b": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40)}
CLIP_L_336 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                  image_size=336, patch_size=14, projection_dim=768)
VOCAB = 32064
SCHEMES = {  # the recipes of scripts/finetune_*.sh
    "lora": dict(scheme="lora", r=128, alpha=256),
    "asymlora": dict(scheme="asymlora", r=32, alpha=64, num_experts=3, router_scope="mlp_block",
                     mixture_targets=list(MLP), router_bias=True),
    "moe_lora": dict(scheme="moe_lora", r=32, alpha=64, num_experts=3, router_scope="mlp_block",
                     mixture_targets=list(MLP)),
    "mixlora": dict(scheme="mixlora", r=8, alpha=16, num_experts=32),  # every target, as finetune_mixlora.sh
}
FROZEN_BYTES = {16: 2.0, 8: 1.0, 4: 0.5 + 1 / 64 + 4 / (64 * 256)}  # nf4 + double-quantized block scales


def llava_config(model: str) -> LlavaConfig:
    text = LlamaConfig(vocab_size=VOCAB, max_position_embeddings=4096, **LLAMA[model])
    vision = CLIPVisionConfig(**CLIP_L_336)
    return LlavaConfig(vision_config=vision, text_config=text, image_token_index=32000, image_seq_length=576,
                       projector_hidden_act="gelu", vision_feature_layer=-2, vision_feature_select_strategy="default")


def meta_model(model: str, scheme: str, r: int | None = None):
    with torch.device("meta"):
        llava = LlavaForConditionalGeneration(llava_config(model))
        overrides = dict(SCHEMES[scheme], targets=ATTENTION + MLP)
        if r is not None:
            overrides.update(r=r, alpha=2 * r)
        inject_adapters(llava, AdapterConfig(**overrides))
    return llava


@dataclass
class Counts:
    frozen_lm: int
    frozen_vision: int
    adapters: int
    projector: int

    @property
    def trainable(self) -> int:
        return self.adapters + self.projector


def count(llava) -> Counts:
    adapter_ids = {id(p) for _, m in adapter_modules(llava) for n, p in m.named_parameters() if not n.startswith("base.")}
    c = Counts(0, 0, 0, 0)
    for name, p in llava.named_parameters():
        if id(p) in adapter_ids:
            c.adapters += p.numel()
        elif "multi_modal_projector" in name:
            c.projector += p.numel()
        elif "vision_tower" in name:
            c.frozen_vision += p.numel()
        else:
            c.frozen_lm += p.numel()
    return c


def memory_per_gpu(c: Counts, zero: int, gpus: int, bits: int) -> dict[str, float]:
    """Bytes per GPU. Trainable: bf16 weight 2 + bf16 grad 2 + fp32 master/Adam m/v 12 (ZeRO paper, K=12);
    stage 1 partitions the 12, stage 2 also the grads, stage 3 also every weight (frozen ones too)."""
    frozen = c.frozen_lm * FROZEN_BYTES[bits] + c.frozen_vision * 2.0
    t = c.trainable
    return {"frozen weights": frozen / (gpus if zero >= 3 else 1),
            "trainable weights": 2.0 * t / (gpus if zero >= 3 else 1),
            "gradients": 2.0 * t / (gpus if zero >= 2 else 1),
            "optimizer states": 12.0 * t / (gpus if zero >= 1 else 1)}


def activations(cfg: LlavaConfig, batch: int, seq: int, checkpointing: bool, adapted: bool) -> dict[str, float]:
    """Bytes of saved activations for one micro-batch (bf16, sdpa: no attention matrix kept).

    Per token and decoder layer: attention 12h (norm input 2h, normed 2h, q/k/v 6h, attention output 2h), MLP
    4h + 8i (norm input, normed, gate, up, act(gate), product), adapters 18h + 3i (dropout masks 1 B and dropped
    inputs 2 B on the 6 h-wide and the i-wide adapter input). With checkpointing only each layer's input (2h)
    is kept, plus one layer recomputed at a time. Logits: bf16 + their fp32 upcast for the loss (6 V).
    """
    h, i, n, vocab = (cfg.text_config.hidden_size, cfg.text_config.intermediate_size,
                      cfg.text_config.num_hidden_layers, cfg.text_config.vocab_size)
    per_layer = 12 * h + 4 * h + 8 * i + ((18 * h + 3 * i) if adapted else 0)
    tokens = batch * seq
    layers = tokens * (2 * h * n + per_layer) if checkpointing else tokens * per_layer * n
    return {"decoder layers": float(layers), "logits": float(tokens * 6 * vocab)}


def flops_share(c: Counts, cfg: LlavaConfig, seq: int) -> float:
    """Adapter share of training FLOPs per token: adapters 3 x 2 x params (forward, input and weight grads), the
    frozen LM 2 x 2 x params (forward, input grads only) plus causal attention 2 x 2 x 2 x (seq/2) x h per layer."""
    h, n = cfg.text_config.hidden_size, cfg.text_config.num_hidden_layers
    base = 2 * 2 * c.frozen_lm + 2 * 2 * 2 * (seq / 2) * h * n
    adapters = 3 * 2 * c.adapters
    return adapters / (adapters + base)


def bytes_moved(c: Counts, zero: int, gpus: int, grad_accum: int, bits: int = 16, checkpointing: bool = True) -> float:
    """Bytes each GPU sends per optimizer step in ring collectives ((n-1)/n of a buffer each), bf16 tensors.

    Stage 1/2: the trainable gradients are reduce-scattered at every micro-step and the updated trainable weights
    all-gathered once per step (DDP: an all-reduce of the gradients, twice the reduce-scatter). Stage 3 also gathers
    every weight, the frozen base included, at each use: forward, checkpoint recompute and backward, every micro-step.
    """
    if gpus <= 1:
        return 0.0
    ring = (gpus - 1) / gpus
    trainable = 2.0 * c.trainable
    grads = trainable * ring * grad_accum * (2 if zero == 0 else 1)
    if zero < 3:
        return grads + (trainable * ring if zero > 0 else 0.0)
    weights = c.frozen_lm * FROZEN_BYTES[bits] + c.frozen_vision * 2.0 + trainable
    return grads + weights * ring * (3 if checkpointing else 2) * grad_accum


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
        for name in schemes:
            llava = meta_model(args.model, name, args.r)
            per_scheme[name] = sizes(count(llava), llava.config)
        text = estimate.time_report(per_scheme, data_tokens(args), estimate.GPUS[args.gpu], args.gpus,
                                       [b for b in args.benchmarks.split(",") if b], args.epochs, args.mfu,
                                       args.global_batch)
        print(text)


if __name__ == "__main__":
    main()
