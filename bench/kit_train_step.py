"""What a kit training step costs with and without the two token cuts: the LM head on labelled positions only
(llava/train/supervised_logits.py) and SmolLM2's default system line dropped (llava/kit/small.py).

python bench/kit_train_step.py [--data playground/data/mixture] [--batches 12] [--rounds 3]

The small preset with the kit's plain-LoRA adapters (rank 14, bf16 base, fp32 adapters), batch 2 drawn from the
kit's training mixture as the kit's sampler groups them (a mix of 8-question conversations and short caption / vqg
samples). Each configuration runs the same batches, forward + backward (no optimizer step), side by side in rounds
so drift hits every configuration alike; the table gives seconds per step (median over rounds of the mean over
batches) and the ratio to the configuration `make compare` ran before (full head, system line). One thread, as a
`make compare` worker has.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time

import torch

from llava.adapters import AdapterConfig, inject_adapters
from llava.data import SupervisedCollator, SupervisedDataset
from llava.kit.easy_vqa_mixture import KIT_MAX_TOKENS
from llava.kit.small import SMALL_VERSION, SMOLLM2_DEFAULT_SYSTEM
from llava.model.builder import load_model
from llava.model.image import ImageTransform
from llava.train.supervised_logits import supervised_logits_only


def batches(manifest: dict, tokenizer, image_processor, image_seq_length: int, n: int) -> list[dict]:
    dataset = SupervisedDataset(manifest["mixture"], tokenizer, ImageTransform(image_processor, "pad"),
                                image_folder=manifest["pairs_root"], template=SMALL_VERSION,
                                image_seq_length=image_seq_length, model_max_length=KIT_MAX_TOKENS)
    collate = SupervisedCollator(tokenizer.pad_token_id)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(dataset), generator=g).tolist()
    out = []
    for k in range(n):
        batch = collate([dataset[i] for i in order[2 * k: 2 * k + 2]])
        out.append({key: v for key, v in batch.items() if key not in ("task_ids", "sample_index")})
    return out


def step_seconds(model, data: list[dict], labelled_only: bool) -> float:
    start = time.perf_counter()
    for batch in data:
        inputs = supervised_logits_only(batch) if labelled_only else batch
        model(**inputs).loss.backward()
    model.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / len(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="playground/data/mixture")
    ap.add_argument("--batches", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with open(os.path.join(args.data, "manifest.json")) as f:
        manifest = json.load(f)
    model, tokenizer, image_processor = load_model("small", dtype="bf16")
    inject_adapters(model, AdapterConfig(scheme="lora", r=14, alpha=28, dropout=0.0), train_projector=False)
    model.train()
    with_system = copy.deepcopy(tokenizer)
    loop = "{% for message in messages %}"  # the line sits inside the loop (it tests loop.first)
    with_system.chat_template = tokenizer.chat_template.replace(loop, loop + SMOLLM2_DEFAULT_SYSTEM, 1)
    seq = model.config.image_seq_length
    data = {"system line": batches(manifest, with_system, image_processor, seq, args.batches),
            "no system line": batches(manifest, tokenizer, image_processor, seq, args.batches)}
    tokens = {k: sum(int(b["attention_mask"].sum()) for b in v) / len(v) for k, v in data.items()}
    configs = [(prompt, head) for prompt in data for head in (False, True)]
    step_seconds(model, data["system line"][:2], False)  # warm-up
    times = {c: [] for c in configs}
    for _ in range(args.rounds):
        for prompt, head in configs:
            times[(prompt, head)].append(step_seconds(model, data[prompt], head))
    base = statistics.median(times[configs[0]])
    print("| prompt | LM head | tokens per batch | s per step | ratio to full head + system line |")
    print("|---|---|---|---|---|")
    for prompt, head in configs:
        s = statistics.median(times[(prompt, head)])
        print(f"| {prompt} | {'labelled positions' if head else 'every position'} | {tokens[prompt]:.0f} | "
              f"{s:.3f} | {s / base:.2f} |")


if __name__ == "__main__":
    main()
