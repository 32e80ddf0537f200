"""`make demo`: AsymLoRA on the small preset (SmolLM2-135M-Instruct + an easy-vqa-trained tower), CPU, ~3 minutes.

1. writes a two-task mixture (`vqa`: shape / colour questions and eight-question yes/no conversations; `caption`)
   from easy-vqa's real images, vqa with twice caption's samples;
2. builds the small preset (tower and word-aligned projector shipped with the package) and fine-tunes it with AsymLoRA
   (shared A, 3 routed B heads on the MLP, the paper preset's layout at rank 8), printing the loss;
3. answers held-out questions and the paired yes/no benchmark, and prints per-task accuracy beside the blind
   (question-only) baseline, and the router load per task.

160 steps of 2: yes/no is learnt after enough optimizer steps, not samples (docs/experiment_kit.md's History);
`--steps 96`, `--steps 100 --lr 4e-3` and `--yes_no_turns 4` do not learn it, and `--batch 1` learns it on one CPU
and less well on another (docs/demo.md).

python -m llava.kit.demo [--steps 160] [--batch 2] [--lr 2e-3] [--yes_no_turns 8] [--lora_layers 15-29]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time

import torch

from llava.adapters import presets
from llava.console import progress_bars_only_on_a_terminal
from llava.kit.easy_vqa_mixture import KIT_MAX_TOKENS, build
from llava.kit.evaluate import blind_scores, evaluate, headline
from llava.kit.router_mi import report_to
from llava.kit.shape_tower import pretrained_tower
from llava.kit.small import SMALL_VERSION
from llava.model.cpu_dtype import compute_dtype_line, cpu_compute_dtype
from llava.train.args import adapter_flags
from llava.train.train import train

DATA = "playground/data/kit_demo"  # playground/data/demo holds the tiny preset scripts' data
OUTPUT = "checkpoints/demo-asymlora"
TASKS = ("vqa", "caption")  # vqa with twice caption's samples: its yes/no half needs the most examples (docs)
STEPS, BATCH, LR = 160, 2, 2e-3
YES_NO_TURNS, TEST = 8, 40  # questions per training yes/no conversation; held-out questions per task (and pair images)


def train_args(mixture: str, output: str, steps: int, batch: int, seed: int = 0, layers: str | None = None,
               lr: float = LR) -> list[str]:
    return [
        "--model_name_or_path", "small", "--version", SMALL_VERSION, "--data_path", mixture,
        "--image_folder", DATA, "--lora_enable", "True",
        *adapter_flags(presets.variant("asymlora", 8, dropout=0.0)), "--learning_rate", str(lr),
        "--freeze_mm_mlp_adapter", "True", "--warmup_ratio", "0.05",
        "--lr_scheduler_type", "cosine", "--max_steps", str(steps), "--per_device_train_batch_size", str(batch),
        "--model_max_length", str(KIT_MAX_TOKENS), "--group_by_modality_length", "True", "--logging_steps", "20",
        "--save_steps", str(steps), "--save_total_limit", "1",
        "--report_to", report_to(), "--output_dir", output, "--seed", str(seed),
        "--bf16", str(torch.cuda.is_available() or cpu_compute_dtype() == "bf16"),
        "--use_cpu", str(not torch.cuda.is_available()),
        *(["--lora_layers", layers] if layers else []),
    ]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=STEPS, help="optimizer steps of the fine-tuning")
    ap.add_argument("--batch", type=int, default=BATCH, help="samples per optimizer step")
    ap.add_argument("--yes_no_turns", type=int, default=YES_NO_TURNS, help="questions per training yes/no conversation")
    ap.add_argument("--lr", type=float, default=LR, help="peak learning rate (cosine schedule)")
    ap.add_argument("--lora_layers", help="adapters on these decoder layers only (e.g. 15-29; default: all)")
    args = ap.parse_args(argv)
    progress_bars_only_on_a_terminal()  # a log file gets no carriage-return floods
    t0 = time.time()
    shutil.rmtree(OUTPUT, ignore_errors=True)  # a fresh run, not a resume of the last demo
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if not torch.cuda.is_available():
        print(compute_dtype_line("the demo"))
    manifest = build(DATA, n_train=640, n_test=TEST, seed=0, train_sizes={"vqa": 2 * 640},
                     yes_no_turns=args.yes_no_turns)
    mixture = ",".join(f"{t}={manifest['train'][t]}" for t in TASKS)
    manifest = {**manifest, "tasks": list(TASKS), "eval": {t: manifest["eval"][t] for t in TASKS}}
    pretrained_tower()  # once per machine (cached); says so when it trains
    trainer = train(train_args(mixture, OUTPUT, steps=args.steps, batch=args.batch, layers=args.lora_layers,
                                 lr=args.lr))
    losses = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]
    print("\nloss by step: " + "  ".join(f"{s}:{loss:.3f}" for s, loss in losses))
    scores = headline(evaluate(OUTPUT, manifest, os.path.join(OUTPUT, "eval")))
    blind = headline(blind_scores(manifest))
    print("\nheld-out accuracy (%) next to the blind baseline (most frequent training answer for the same question "
          "text):")
    print("| metric | AsymLoRA | blind | difference |\n|---|---|---|---|")
    for key, value in scores.items():
        print(f"| {key} | {value:.1f} | {blind[key]:.1f} | {value - blind[key]:+.1f} |")
    plots = [f"{OUTPUT}/plots/{name}.png" for name in ("loss", "router_load", "router_health")
             if os.path.exists(f"{OUTPUT}/plots/{name}.png")]
    print(f"\nplots: {', '.join(plots)}")
    if os.path.isdir(f"{OUTPUT}/runs"):
        print(f"tensorboard (the router health as it trained): tensorboard --logdir {OUTPUT}/runs")
    print(f"demo finished in {time.time() - t0:.0f} s; checkpoint in {OUTPUT}")


if __name__ == "__main__":
    main()
