"""Why the kit's yes/no data looks as it does: what a small LLaVA needs before paired yes/no can be learnt at all.

Three plain-LoRA runs (rank 8, all linears, constant lr 2e-3, batch 8) on yes/no questions alone from the kit's mixture,
each scored on the paired benchmark (MME acc / acc+) beside the blind baseline:
  single       one question per sample (easy-vqa's own positive questions, balanced), word-aligned projector (frozen);
  four-turn    the kit's training form: four questions per image in one conversation, word-aligned projector (frozen);
  four-turn-new-projector   the same data, but a freshly initialised projector trained with the adapters (LLaVA
               stage 2 without stage 1).
Each run's log and scores stay under OUT/<condition>/; finished conditions are skipped.

python -m llava.kit.yes_no_ablation --out runs/yes_no --steps 60
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch
from safetensors.torch import save_file

from llava.console import progress_bars_only_on_a_terminal
from llava.kit.easy_vqa_mixture import build
from llava.kit.evaluate import blind_scores, evaluate, headline
from llava.kit.shape_tower import TowerRecipe
from llava.kit.small import SMALL_VERSION
from llava.kit.word_projector import mlp2x_gelu, stage1_state

SMOLLM2_WIDTH = 576  # SmolLM2-135M's hidden size: the projector's output

CONDITIONS = ("single", "four-turn", "four-turn-new-projector")


def yes_no_files(manifest: dict, out: str) -> dict[str, str]:
    """{"single": path, "four-turn": path}: the mixture's yes/no conversations, and the same images asked one
    question each (the conversation's first question)."""
    with open(manifest["train"]["vqa"]) as f:
        rows = [r for r in json.load(f) if r["conversations"][1]["value"] in ("yes", "no")]
    single = [{**r, "conversations": r["conversations"][:2]} for r in rows]
    paths = {}
    for name, data in (("four-turn", rows), ("single", single)):
        paths[name] = os.path.join(out, f"train_yes_no_{name}.json")
        with open(paths[name], "w") as f:
            json.dump(data, f)
    return paths


def new_projector(path: str, vision_width: int, text_width: int, seed: int = 0) -> str:
    """A projector as LLaVA's builder initialises one (nn.Linear defaults), saved in stage-1 file form."""
    torch.manual_seed(seed)
    save_file(stage1_state(mlp2x_gelu(vision_width, text_width)), path)
    return path


def train_args(data: str, images: str, out: str, steps: int, projector: str | None) -> list[str]:
    args = ["--model_name_or_path", "small", "--version", SMALL_VERSION, "--data_path", data, "--image_folder", images,
            "--lora_enable", "True", "--adapter_scheme", "lora", "--lora_r", "8", "--lora_alpha", "16",
            "--lora_dropout", "0.0", "--learning_rate", "2e-3", "--lr_scheduler_type", "constant", "--warmup_ratio",
            "0.05", "--max_steps", str(steps), "--per_device_train_batch_size", "8", "--model_max_length", "256",
            "--logging_steps", "10", "--save_steps", str(steps), "--save_total_limit", "1", "--report_to", "none",
            "--output_dir", out, "--seed", "0"]
    args += ["--pretrain_mm_mlp_adapter", projector, "--mm_projector_lr", "2e-3"] if projector else \
        ["--freeze_mm_mlp_adapter", "True"]
    if not torch.cuda.is_available():
        args += ["--bf16", "True", "--use_cpu", "True"]
    return args


def main(argv=None):
    progress_bars_only_on_a_terminal()  # a log file gets no carriage-return floods
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/yes_no")
    ap.add_argument("--data", default="playground/data/yes_no_ablation")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--test", type=int, default=60, help="paired images per subtask")
    args = ap.parse_args(argv)
    manifest = build(args.data, n_train=1200, n_test=args.test, seed=0, yes_no_turns=4)
    manifest = {**manifest, "tasks": ["vqa"], "eval": {}}  # the paired benchmark only
    os.makedirs(args.out, exist_ok=True)
    files = yes_no_files(manifest, args.out)
    table = {"blind": headline(blind_scores({**manifest, "train": {"vqa": files["four-turn"]}}))}
    for condition in CONDITIONS:
        out = os.path.join(args.out, condition)
        scores_path = os.path.join(out, "eval", "scores.json")
        if not os.path.exists(scores_path):
            os.makedirs(out, exist_ok=True)
            projector = new_projector(os.path.join(args.out, "new_projector.safetensors"),
                                          TowerRecipe().hidden_size, SMOLLM2_WIDTH) \
                if condition.endswith("new-projector") else None
            data = files["single" if condition == "single" else "four-turn"]
            with open(os.path.join(out, "train.log"), "w") as log:
                subprocess.run([sys.executable, "-m", "llava.train.train",
                                *train_args(data, args.data, out, args.steps, projector)],
                               stdout=log, stderr=subprocess.STDOUT, check=True)
            evaluate(out, manifest, os.path.join(out, "eval"))
        with open(scores_path) as f:
            table[condition] = headline(json.load(f))
    print(f"| condition ({args.steps} steps) | pairs acc | pairs acc+ |\n|---|---|---|")
    for name, row in table.items():
        print(f"| {name} | {row['pairs acc']:.1f} | {row['pairs acc+']:.1f} |")


if __name__ == "__main__":
    main()
