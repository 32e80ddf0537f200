"""Time and cost: training and evaluation GPU-hours from FLOPs, a GPU's dense bf16 peak and an MFU assumption.

Training FLOPs per token with a frozen base and gradient checkpointing (docs/planning.md writes it out):
  frozen LM matmuls  6 P   forward, recomputed forward, input-gradient backward (no weight gradient)
  adapters           8 Pa  forward, recompute, input and weight gradients
  attention          8 s h L   causal: 2 s h per layer forward (a token attends to s/2 keys, QK and AV), backward 2x,
                                recompute 1x; s is the data's mean sequence length
  projector          6 Pp per image token (not checkpointed); vision tower 2 Pv per patch, forward only (frozen)
Time = FLOPs / (GPUs x peak x MFU). Evaluation: prefill the same way (forward only) at the same MFU, plus decoding
at one full read of the weights per generated token and batch (memory-bound) at MBU of HBM bandwidth, but never
faster than the decoding step measured on a GPU (it is bound by the host launching kernels, not by memory), plus a
fixed model-load time per benchmark run.
"""

from __future__ import annotations

from dataclasses import dataclass

from llava.data.token_count import DataTokens


@dataclass(frozen=True)
class GPU:
    name: str
    bf16_flops: float  # dense (no sparsity), vendor datasheet
    hbm_bytes_per_s: float


GPUS = {"a100": GPU("A100 SXM 80GB", 312e12, 2.039e12), "h100": GPU("H100 SXM 80GB", 989e12, 3.35e12),
        "h200": GPU("H200 SXM 141GB", 989e12, 4.8e12)}
MFU = 0.30  # model FLOPs utilisation: LLaVA-1.5-7B stage 2 (~0.5e9 tokens) in its reported ~10 h on 8 A100 is ~0.3
MBU = 0.5  # share of HBM bandwidth a decoding step could reach at small batch
# Seconds per decoding step of LLaVA-1.5-7B with unmerged adapters (cast to bf16 once, as evaluation loads them), batch
# 16, measured on an H200: docs/gpu/h200-run2.md, decode table, row "asymlora, adapters cast to bf16 once". Eager
# decoding is bound by the host launching kernels, far above the bandwidth floor, so this is the floor of every GPU's
# estimate until compiled decoding is measured.
MEASURED_DECODE_STEP = 0.0448
LOAD_SECONDS = 120  # loading the 7B base + adapters once per benchmark run
IMAGE_TOKENS = 576
PATCHES = 577  # CLIP ViT-L/14-336: 24 x 24 patches + class token

# The benchmarks as scripts/eval/*.sh run them: questions, mean prompt tokens (template + question + format prompt;
# TextVQA with its OCR tokens) and mean generated tokens (short answers + </s>; MM-Vet's free-form replies).
BENCHMARKS = {"mme": (2_374, 60, 2), "gqa": (12_578, 70, 3), "textvqa": (5_000, 90, 4),
              "vizwiz": (4_319, 75, 4), "mmvet": (218, 70, 150)}

# With no data on disk: the training sets' published sizes and an assumed mean of text tokens per record
# (from LLaVA's published JSON sizes: conversation_58k.json 126 MB for 58k records, llava_instruct_150k.json
# 229 MB for 158k; about 4 characters per token and a fifth of the file being JSON syntax).
ASSUMED = {"conversation58k": (58_000, 58_000, 440), "mix665k": (665_298, 624_610, 300),
           "multidomain": (82_783 + 15_000 + 25_000, 82_783 + 15_000 + 25_000, 140)}


def assumed_tokens(recipe: str) -> DataTokens:
    records, images, per_record = ASSUMED[recipe]
    return DataTokens(records, images, float(records * per_record), 0,
                      f"assumed: {records:,} records, {per_record} text tokens each (no data file yet)")


@dataclass
class Sizes:
    lm: int  # frozen LM parameters in matmuls (input embedding excluded, lm_head included)
    adapters: int
    projector: int
    vision: int
    hidden: int
    layers: int


def train_flops(s: Sizes, data: DataTokens, checkpointing: bool = True) -> float:
    tokens = data.total(IMAGE_TOKENS)
    seq = data.mean_length(IMAGE_TOKENS)
    passes = 3 if checkpointing else 2  # forward (+ recompute) + input gradient
    per_token = 2 * s.lm * passes + 2 * s.adapters * (passes + 1) + 2 * seq * s.hidden * s.layers * (passes + 1)
    images = data.image_records
    return tokens * per_token + images * (IMAGE_TOKENS * 6 * s.projector + PATCHES * 2 * s.vision)


def train_time(s: Sizes, data: DataTokens, gpu: GPU, gpus: int, epochs: float = 1.0, mfu: float = MFU,
               global_batch: int = 128) -> dict:
    flops = epochs * train_flops(s, data)
    seconds_gpu = flops / (gpu.bf16_flops * mfu)
    steps = max(1, int(epochs * data.records / global_batch))
    return {"flops": flops, "gpu_hours": seconds_gpu / 3600, "wall_hours": seconds_gpu / gpus / 3600,
            "steps": steps, "step_seconds": seconds_gpu / gpus / steps}


def eval_time(s: Sizes, bench: str, gpu: GPU, gpus: int, mfu: float = MFU, batch: int = 8) -> dict:
    questions, prompt, answer = BENCHMARKS[bench]
    prefill = questions * (2 * (s.lm + s.adapters) * (IMAGE_TOKENS + prompt) + 2 * s.vision * PATCHES)
    weight_read = 2 * (s.lm + s.adapters + s.vision) / (gpu.hbm_bytes_per_s * MBU)  # bf16 bytes per decode step
    decode = questions / batch * answer * max(weight_read, MEASURED_DECODE_STEP)
    seconds_gpu = prefill / (gpu.bf16_flops * mfu) + decode + LOAD_SECONDS * gpus
    return {"questions": questions, "gpu_hours": seconds_gpu / 3600, "wall_hours": seconds_gpu / gpus / 3600}


def time_report(sizes: dict[str, Sizes], data: DataTokens, gpu: GPU, gpus: int, benchmarks: list[str],
                epochs: float = 1.0, mfu: float = MFU, global_batch: int = 128) -> str:
    """The estimate per stage (training per scheme, then each benchmark per scheme) and the total GPU-hours."""
    lines = [f"time on {gpus} x {gpu.name} (bf16 peak {gpu.bf16_flops / 1e12:.0f} TFLOPS, MFU {mfu:.2f} assumed; a "
             f"decoding step at {MBU:.0%} of {gpu.hbm_bytes_per_s / 1e12:.2f} TB/s, at least the "
             f"{1000 * MEASURED_DECODE_STEP:.1f} ms measured on an H200; docs/planning.md):",
             f"  data: {data.records:,} records ({data.image_records:,} with an image): "
             f"{data.text_tokens / 1e6:.1f}M text + {data.image_tokens(IMAGE_TOKENS) / 1e6:.1f}M image tokens "
             f"({data.how})"]
    total = 0.0
    for scheme, s in sizes.items():
        t = train_time(s, data, gpu, gpus, epochs, mfu, global_batch)
        total += t["gpu_hours"]
        lines.append(f"  train {scheme:<10} {epochs:g} epoch, {t['steps']:,} steps of {global_batch}: "
                     f"{t['step_seconds']:.1f} s/step, {t['wall_hours']:.1f} h wall, {t['gpu_hours']:.1f} GPU-hours")
        for bench in benchmarks:
            e = eval_time(s, bench, gpu, gpus, mfu)
            total += e["gpu_hours"]
            lines.append(f"  eval  {scheme:<10} {bench:<8} {e['questions']:,} questions: {e['wall_hours']:.2f} h wall, "
                         f"{e['gpu_hours']:.2f} GPU-hours")
    lines.append(f"  total: {total:.1f} GPU-hours ({total / gpus:.1f} h on {gpus} GPUs)")
    return "\n".join(lines)
