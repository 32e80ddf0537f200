"""What every part of the GPU check shares: the model it runs (LLaVA-1.5-7B-shaped, or toy-sized for --cpu-smoke),
the four schemes as the finetune scripts set them, the FLOP model, and one JSON file per part.

The model is built from configs with random weights: no download, and the shapes, not the values, set speed and
memory. Parts run as separate processes (validate.sh) so that one that hangs or runs out of memory costs only itself.
"""

from __future__ import annotations

import json
import os
import platform
import time

import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from llava.adapters import AdapterConfig, inject_adapters, presets
from llava.adapters.merge import unload_adapters
from llava.train import plan_model

# The adapter settings of scripts/finetune_{lora,moe_lora,asymlora,mixlora}.sh: their presets at 7B; --cpu-smoke: at
# MODEL=tiny's (llava/adapters/presets.py)
SCHEMES = tuple(presets.PRESETS["7b"])
# Dense bf16 tensor-core peak by the vendors' datasheets (SXM parts), FLOP/s; MFU is against this.
DATASHEET_BF16 = {"H200": 989.4e12, "H100 80GB HBM3": 989.4e12, "H100 SXM": 989.4e12, "H100 NVL": 835.5e12,
                  "H100 PCIe": 756.0e12, "A100": 312.0e12, "L40S": 362.05e12, "GH200": 989.4e12}


# the training part adds lora at the routed schemes' rank (the cost of routing at equal rank), and asymlora with
# activation checkpointing on as few layers as the card's memory needs (--checkpoint_layers auto)
AUTO_CHECKPOINTING = ", checkpoint_layers auto"
TRAIN_SCHEMES = (SCHEMES[0], f"{SCHEMES[0]} r=32", *SCHEMES[1:], f"asymlora{AUTO_CHECKPOINTING}")


def scheme_and_rank(name: str) -> tuple[str, int | None]:
    """"lora r=32" -> ("lora", 32); a plain scheme name -> (name, None): its preset's rank."""
    scheme, _, rank = name.removesuffix(AUTO_CHECKPOINTING).partition(" r=")
    return scheme, int(rank) if rank else None


def adapter_config(name: str, smoke: bool) -> AdapterConfig:
    scheme, rank = scheme_and_rank(name)
    overrides = {} if rank is None else {"r": rank, "alpha": 2 * rank}  # the presets' alpha = 2 r
    return AdapterConfig.preset(scheme, "tiny" if smoke else "7b", **overrides)


def llava_config(smoke: bool) -> LlavaConfig:
    """LLaVA-1.5-7B (Vicuna-7B + CLIP ViT-L/14-336, the planner's config), or a toy of the same architecture."""
    if not smoke:
        return plan_model.llava_config("7b")
    text = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=172, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=32)
    return LlavaConfig(vision_config=vision, text_config=text, image_token_index=500, image_seq_length=16,
                       projector_hidden_act="gelu", vision_feature_layer=-2, vision_feature_select_strategy="default")


def attn_implementation() -> str:
    """flash_attention_2 where flash-attn imports (the `flash` extra), else sdpa."""
    if torch.cuda.is_available():
        try:
            import flash_attn  # noqa: F401
            return "flash_attention_2"
        except ImportError:
            pass
    return "sdpa"


def build_model(smoke: bool, device: str, dtype: torch.dtype, attn: str | None = None):
    """Random weights, created directly in `dtype` on `device`."""
    config = llava_config(smoke)
    config._attn_implementation = attn or attn_implementation()
    previous = torch.get_default_dtype()
    torch.manual_seed(0)
    try:
        torch.set_default_dtype(dtype)
        with torch.device(device):
            model = LlavaForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    model.requires_grad_(False)
    return model


def remove_adapters(model) -> None:
    """The next scheme starts from the bare frozen model."""
    unload_adapters(model)
    model.requires_grad_(False)


def with_adapters(model, name: str, smoke: bool):
    config = adapter_config(name, smoke)
    inject_adapters(model, config)
    return config


def image_batch(config: LlavaConfig, batch: int, seq: int, device: str, dtype: torch.dtype, prompt: int = 64):
    """A LLaVA training batch: <s>, the image's tokens, a `prompt`-token question (unlabelled), then an answer to
    the end of `seq` (labelled), as in LLaVA's single-turn samples."""
    g = torch.Generator().manual_seed(1)
    img = config.image_seq_length
    text_vocab = min(config.image_token_index, config.text_config.vocab_size) - 3
    ids = torch.randint(3, 3 + text_vocab, (batch, seq), generator=g)
    ids[:, 0] = 1
    ids[:, 1:1 + img] = config.image_token_index
    labels = ids.clone()
    labels[:, :1 + img + prompt] = -100
    size = config.vision_config.image_size
    pixels = torch.randn(batch, 3, size, size, generator=g)
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device),
            "labels": labels.to(device), "pixel_values": pixels.to(device, dtype)}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def matmul_flops_per_s(device: str, dtype: torch.dtype, n: int, reps: int = 10) -> float:
    """The card's (or CPU's) own dense GEMM rate at n x n x n: the ceiling MFU is also read against."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    seconds = timed(lambda: [a @ b for _ in range(reps)], device)
    return 2 * n**3 * reps / seconds


def datasheet_peak(device: str) -> tuple[str, float | None]:
    if not device.startswith("cuda"):
        return platform.processor() or "cpu", None
    name = torch.cuda.get_device_name()
    for key, peak in DATASHEET_BF16.items():
        if key in name:
            return name, peak
    return name, None


def versions() -> dict:
    import transformers

    out = {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
           "cuda": torch.version.cuda}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name()
        out["driver"] = _driver()
    return out


def _driver() -> str | None:
    try:
        import subprocess

        return subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def write_part(out_dir: str, part: str, result: dict) -> str:
    path = os.path.join(out_dir, f"part_{part}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, path)
    return path


def deadline(seconds: float):
    """A callable, True while time is left: parts check it between measurements and write what they have."""
    end = time.monotonic() + seconds
    return lambda: time.monotonic() < end


def run_args(description: str):
    import argparse

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--out", required=True, help="folder for part_*.json")
    ap.add_argument("--smoke", action="store_true", help="toy shapes on CPU (validate.sh --cpu-smoke)")
    ap.add_argument("--budget", type=float, default=240.0, help="seconds this part may spend measuring")
    args = ap.parse_args()
    args.device = "cpu" if args.smoke else "cuda"
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --smoke (validate.sh --cpu-smoke)")
    args.dtype = torch.bfloat16
    os.makedirs(args.out, exist_ok=True)
    return args
