"""Part `deepspeed`: the card's own command on the GPU. `bash scripts/finetune_asymlora.sh` under DeepSpeed ZeRO-2 and
ZeRO-3 (one process, NCCL, bf16 with fp32 masters), on a model built from parts as users build it (a CLIP tower dir,
a Llama dir, a stage-1 `mm_projector.bin`) with 7B-wide layers (Vicuna-7B's 4096 / 11008 / 32 heads, CLIP-L's 1024,
336 px) but two of each: 4 optimizer steps of 2 x 2 accumulated samples, checkpoints at step 2 and 4; then the run
resumed from checkpoint-2, whose steps 3-4 should repeat the uninterrupted run's. Per stage: exit status, wall time,
the losses, the resumed losses and their largest difference. --smoke: toy widths on the CPU (DS_ACCELERATOR=cpu, gloo),
ZeRO-3 only and not resumed.

DeepSpeed is not in the GPU image: carry it as a wheel (validate.sh --wheels DIR); without it this part says so.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time

import torch
from common import run_args, write_part
from PIL import Image
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

from llava.model.tiny import build_tiny_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = 4


def write_parts(root: str, smoke: bool) -> dict:
    """CLIP dir, Llama dir (with a tokenizer) and mm_projector.bin, random weights in bf16."""
    tokenizer = build_tiny_tokenizer()
    if smoke:
        text = dict(hidden_size=64, intermediate_size=172, num_attention_heads=4, num_key_value_heads=4)
        vision = dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, image_size=32, patch_size=8)
    else:
        text = dict(hidden_size=4096, intermediate_size=11008, num_attention_heads=32, num_key_value_heads=32)
        vision = dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, image_size=336, patch_size=14)
    torch.manual_seed(0)
    paths = {"clip": os.path.join(root, "clip"), "lm": os.path.join(root, "lm"),
             "projector": os.path.join(root, "mm_projector.bin")}
    CLIPVisionModel(CLIPVisionConfig(num_hidden_layers=2, projection_dim=32, **vision)).to(torch.bfloat16) \
        .save_pretrained(paths["clip"])
    lm_config = LlamaConfig(vocab_size=len(tokenizer), num_hidden_layers=2, max_position_embeddings=4096,
                            bos_token_id=1, eos_token_id=2, pad_token_id=3, **text)
    LlamaForCausalLM(lm_config).to(torch.bfloat16).save_pretrained(paths["lm"])
    tokenizer.save_pretrained(paths["lm"])
    d_v, d = vision["hidden_size"], text["hidden_size"]
    torch.save({"model.mm_projector.0.weight": torch.randn(d, d_v) * 0.02, "model.mm_projector.0.bias": torch.zeros(d),
                "model.mm_projector.2.weight": torch.randn(d, d) * 0.02, "model.mm_projector.2.bias": torch.zeros(d)},
               paths["projector"])
    return paths


def write_data(root: str) -> str:
    """Three tasks of 8 samples, images of several sizes, every fourth sample text-only."""
    os.makedirs(root, exist_ok=True)
    for i in range(4):
        Image.new("RGB", (60 + 20 * i, 50), (40 * i, 200 - 30 * i, 90)).save(os.path.join(root, f"img{i}.png"))
    spec = []
    for task, answers in {"shape": ("circle", "triangle"), "color": ("red", "blue"), "yesno": ("yes", "no")}.items():
        rows = [{"id": f"{task}{i}", **({"image": f"img{i % 4}.png"} if i % 4 else {}),
                 "conversations": [{"from": "human", "value": ("<image>\n" if i % 4 else "") + f"what {task} is it?"},
                                   {"from": "gpt", "value": answers[i % 2]}]} for i in range(8)]
        path = os.path.join(root, f"{task}.json")
        with open(path, "w") as f:
            json.dump(rows, f)
        spec.append(f"{task}={path}")
    return ",".join(spec)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def finetune(paths: dict, data: str, images: str, out: str, stage: str, smoke: bool, resume: str | None = None) -> dict:
    """One run of the card's command; its exit status, wall time and logged losses."""
    extra = f"--max_steps {STEPS} --warmup_ratio 0 --report_to none" + (f" --resume_from_checkpoint {resume}"
                                                                         if resume else "")
    env = {**os.environ, "MODEL": paths["lm"], "VISION_TOWER": paths["clip"], "PROJECTOR": paths["projector"],
           "DATA": data, "IMAGE_FOLDER": images, "OUTPUT": out, "NUM_GPUS": "1", "BATCH": "2", "GLOBAL_BATCH": "4",
           "SAVE_STEPS": "2", "LOGGING_STEPS": "1", "WORKERS": "0", "MAX_LEN": "1024", "DROPOUT": "0",
           "PRECISION": "bf16", "DEEPSPEED": f"configs/deepspeed/{stage}.json", "EXTRA_ARGS": extra,
           "MASTER_PORT": str(free_port())}
    if smoke:
        env.update(DEVICE="cpu", DS_ACCELERATOR="cpu")
    start = time.monotonic()
    proc = subprocess.run(["bash", "scripts/finetune_asymlora.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    row = {"rc": proc.returncode, "wall_s": round(time.monotonic() - start, 1)}
    state = os.path.join(out, "trainer_state.json")  # the finished run's (checkpoint-4's lacks the run time)
    if proc.returncode != 0 or not os.path.exists(state):
        row["error"] = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return row
    with open(state) as f:
        history = json.load(f)["log_history"]
    row["losses"] = [h["loss"] for h in history if "loss" in h]
    row["step_s"] = next((h["train_runtime"] / STEPS for h in history if "train_runtime" in h), None)
    return row


def main():
    args = run_args(__doc__)
    result = {"part": "deepspeed", "steps": STEPS, "stages": {}}
    try:
        import deepspeed
    except ImportError as e:
        result["error"] = f"DeepSpeed does not import here ({e}); carry its wheel: validate.sh --wheels DIR"
        write_part(args.out, "deepspeed", result)
        print(result["error"])
        return
    result["deepspeed"] = deepspeed.__version__
    root = os.path.join(args.out, "deepspeed_run")
    shutil.rmtree(root, ignore_errors=True)
    paths = write_parts(os.path.join(root, "parts"), args.smoke)
    data = write_data(os.path.join(root, "data"))
    # the smoke run checks the code path only: ZeRO-3, not resumed (the suite resumes ZeRO-3 on the CPU exactly:
    # tests/test_scheme_matrix.py)
    for stage in ("zero3",) if args.smoke else ("zero2", "zero3"):
        out = os.path.join(root, stage)
        row = finetune(paths, data, os.path.join(root, "data"), out, stage, args.smoke)
        if "losses" in row and not args.smoke:
            resumed = finetune(paths, data, os.path.join(root, "data"), out + "-resumed", stage, args.smoke,
                               resume=os.path.join(out, "checkpoint-2"))
            row["resumed"] = resumed
            if "losses" in resumed:
                row["resume_max_difference"] = max(abs(a - b) for a, b in zip(resumed["losses"][-2:], row["losses"][2:]))
        result["stages"][stage] = row
        print(stage, row, flush=True)
        write_part(args.out, "deepspeed", result)
    shutil.rmtree(os.path.join(root, "parts"), ignore_errors=True)  # GBs of random weights at 7B width


if __name__ == "__main__":
    main()
