"""A training step with activation checkpointing, before and after the frozen vision tower left autograd.

python bench/frozen_tower_step.py [--model small|tiny] [--batch 4] [--rounds 7]

Before: what transformers' `activation_checkpointing_enable()` does by itself (`enable_input_require_grads()`: the
input embeddings of every sub-model hooked, CLIP's patch embedding included), so the frozen tower builds a graph, is
checkpointed, recomputed and back-propagated every step. After: only the language model's input embeddings hooked
(llava/train/activation_checkpointing.py, what LlavaTrainer does), as LLaVA runs the tower without grad. Two copies of the same model (asymlora, the
paper preset's adapters, bf16 base) run the same image batch, forward + backward, side by side in rounds; the last
line is a JSON object with the median per-round ratio before / after and how often a backward hook on the tower's
encoder layers fired in each.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch

from llava.adapters import AdapterConfig, inject_adapters
from llava.model.builder import load_model
from llava.train.activation_checkpointing import language_inputs_require_grad


def image_batch(model, batch: int, text: int = 48):
    config = model.config
    g = torch.Generator().manual_seed(0)
    n = config.image_seq_length
    ids = torch.randint(10, min(config.image_token_index, config.text_config.vocab_size) - 1, (batch, 1 + n + text),
                        generator=g)
    ids[:, 1:1 + n] = config.image_token_index
    labels = ids.clone()
    labels[:, :1 + n + text // 2] = -100
    size = config.vision_config.image_size
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels,
            "pixel_values": torch.randn(batch, 3, size, size, generator=g).to(torch.bfloat16)}


def tower_layers(model):
    """The vision tower's encoder layers (CLIPVisionModel nests them differently across transformers 5.x)."""
    return next(m for n, m in model.model.vision_tower.named_modules() if n.endswith("encoder.layers"))


def tower_hook_counter(model) -> list[int]:
    fired = [0]
    for layer in tower_layers(model):
        layer.register_full_backward_hook(lambda *_: fired.__setitem__(0, fired[0] + 1))
    return fired


def step(model, batch) -> float:
    start = time.perf_counter()
    model(**batch).loss.backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="small", choices=["small", "tiny"])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    torch.manual_seed(0)
    model, _, _ = load_model(args.model, dtype="bf16")
    inject_adapters(model, AdapterConfig.preset("asymlora", r=8, alpha=16))
    model.config.use_cache = model.config.text_config.use_cache = False
    before, after = copy.deepcopy(model), copy.deepcopy(model)  # both copies: neither keeps the original's layout
    for m in (before, after):
        m.train()
        m.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    language_inputs_require_grad(after)
    fired = {"before": tower_hook_counter(before), "after": tower_hook_counter(after)}
    batch = image_batch(model, args.batch)
    models = {"before": before, "after": after}
    for m in models.values():  # warm-up
        step(m, batch)
    for counter in fired.values():
        counter[0] = 0
    times = {name: [] for name in models}
    for r in range(args.rounds):
        for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
            times[name].append(step(models[name], batch))
    for name, t in times.items():
        print(f"{name:6s} median step {1000 * statistics.median(t):8.1f} ms   tower backward hooks fired: "
              f"{fired[name][0]}")
    ratio = statistics.median(b / a for b, a in zip(times["before"], times["after"]))
    print(json.dumps({"before_over_after": round(ratio, 3), "model": args.model, "batch": args.batch,
                      "rounds": args.rounds, "tower_hooks_before": fired["before"][0],
                      "tower_hooks_after": fired["after"][0], "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
