"""`make demo`: AsymLoRA on the tiny preset, on CPU, in a few minutes.

1. writes a LLaVA-format mixture (shape / color / yes-no questions) from the easy-vqa package;
2. fine-tunes the tiny LLaVA with AsymLoRA (paper preset layout at toy rank), printing the loss;
3. answers held-out questions and prints a few, with exact-match accuracy per task.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import torch

from llava.data.easy_vqa_demo import build
from llava.eval.generate import read_questions, run
from llava.model.checkpoint import load_checkpoint_model
from llava.train.train import train

DATA = "playground/data/demo"
OUTPUT = "checkpoints/demo-asymlora"


def main() -> None:
    t0 = time.time()
    shutil.rmtree(OUTPUT, ignore_errors=True)  # a fresh run, not a resume of the last demo
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    paths = build(DATA, n_train=2400, n_test=90)
    mixture = ",".join(f"{t}={paths[t]}" for t in ("shape", "color", "yesno"))
    args = [
        "--model_name_or_path", "tiny", "--version", "v1", "--data_path", mixture, "--image_folder", DATA,
        "--lora_enable", "True", "--adapter_scheme", "asymlora", "--lora_r", "16", "--lora_alpha", "32",
        "--lora_dropout", "0.0", "--num_experts", "3", "--router_scope", "mlp_block",
        "--mixture_targets", "gate_proj,up_proj,down_proj", "--balance_coef", "0.05",
        "--learning_rate", "3e-3", "--mm_projector_lr", "3e-3", "--warmup_ratio", "0.03",
        "--lr_scheduler_type", "cosine", "--num_train_epochs", "8", "--per_device_train_batch_size", "16",
        "--model_max_length", "256", "--logging_steps", "25", "--save_steps", "200", "--save_total_limit", "1",
        "--group_by_modality_length", "True", "--report_to", "none", "--output_dir", OUTPUT,
        "--seed", "0",
    ]
    trainer = train(args)
    losses = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]
    print("\nloss by step: " + "  ".join(f"{s}:{loss:.3f}" for s, loss in losses))
    print(f"loss went from {losses[0][1]:.3f} to {losses[-1][1]:.3f}")

    model, tokenizer, image_processor = load_checkpoint_model(OUTPUT)
    answers = os.path.join(OUTPUT, "demo_answers.jsonl")
    if os.path.exists(answers):
        os.remove(answers)
    questions = read_questions(paths["test"])
    run(model, tokenizer, image_processor, questions, answers, image_folder=DATA, max_new_tokens=8,
        batch_size=16, model_id="demo-asymlora", progress=False)
    by_id = {q["question_id"]: q for q in questions}
    rows = [json.loads(line) for line in open(answers)]
    correct: dict[str, list[int]] = {}
    for row in rows:
        q = by_id[row["question_id"]]
        correct.setdefault(q["category"], []).append(int(row["text"].strip().lower() == q["answer"]))
    print("\nheld-out answers (first 6):")
    for row in rows[:6]:
        q = by_id[row["question_id"]]
        print(f"  Q: {q['text'].splitlines()[0]!r:48} -> {row['text']!r:12} (truth: {q['answer']})")
    print("held-out exact match: " + ", ".join(f"{t} {sum(v)}/{len(v)}" for t, v in sorted(correct.items())))
    print(f"plots: {OUTPUT}/plots/loss.png, {OUTPUT}/plots/router_load.png")
    print(f"demo finished in {time.time() - t0:.0f} s; checkpoint in {OUTPUT}")


if __name__ == "__main__":
    main()
