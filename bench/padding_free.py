"""What padding costs a training step, and what padding-free batches (`--padding_free True`) save.

python bench/padding_free.py [--data playground/data/mixture] [--batch 4] [--batches 10] [--rounds 2]

The small preset (SmolLM2-135M, bf16 base where the CPU does bf16 natively, else fp32) with `make compare`'s AsymLoRA
adapters (shared A, 3 routed B heads on the MLP, balance loss), batches drawn from the kit's four-task mixture two
ways: in random order (the Trainer's default sampler) and by LLaVA's modality-length grouping
(`--group_by_modality_length`, which the kit and the scripts use). Each batch is run padded and packed, forward +
backward with the router losses as the trainer runs them, alternating so drift hits both alike. The table gives the
tokens computed per batch (padded: batch x longest), the share that is padding, seconds per step (median over rounds
of the mean over batches) and packed / padded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from llava.adapters import AdapterConfig, inject_adapters, presets
from llava.adapters.attached import routing_state
from llava.adapters.packed import PackedSamples
from llava.data import SupervisedCollator, SupervisedDataset
from llava.data.sampler import ModalityLengthGroupedSampler
from llava.kit.easy_vqa_mixture import KIT_MAX_TOKENS
from llava.kit.small import SMALL_VERSION
from llava.model.builder import load_model
from llava.model.cpu_dtype import cpu_compute_dtype
from llava.model.image import ImageTransform
from llava.train.supervised_logits import supervised_logits_only


def batch_orders(dataset, batch: int, n: int) -> dict[str, list[list[int]]]:
    g = torch.Generator().manual_seed(0)
    random = torch.randperm(len(dataset), generator=g).tolist()
    grouped = list(iter(ModalityLengthGroupedSampler(dataset.modality_lengths, batch, 1, seed=0)))
    return {order: [indices[batch * k: batch * (k + 1)] for k in range(n)]
            for order, indices in (("random order", random), ("modality-length grouped", grouped))}


def step(model, batch: dict, coef: float) -> None:
    batch = dict(batch)
    task_ids, state = batch.pop("task_ids"), routing_state(model)
    batch.pop("sample_index")
    state.begin_batch(task_ids, batch.get("attention_mask"), batch["labels"], PackedSamples.of_batch(batch, task_ids))
    state.aux_grad_scale = coef
    loss = model(**supervised_logits_only(batch), use_cache=False).loss
    state.finish_forward()
    loss.backward()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="playground/data/mixture")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    with open(os.path.join(args.data, "manifest.json")) as f:
        manifest = json.load(f)
    dtype = cpu_compute_dtype()
    model, tokenizer, image_processor = load_model("small", dtype=dtype)
    config = AdapterConfig(**presets.variant("asymlora", 8, dropout=0.0))
    inject_adapters(model, config, train_projector=False)
    model.train()
    dataset = SupervisedDataset(manifest["mixture"], tokenizer, ImageTransform(image_processor, "pad"),
                                image_folder=manifest["pairs_root"], template=SMALL_VERSION,
                                image_seq_length=model.config.image_seq_length, model_max_length=KIT_MAX_TOKENS)
    collators = {"padded": SupervisedCollator(tokenizer.pad_token_id),
                 "packed": SupervisedCollator(tokenizer.pad_token_id, padding_free=True)}
    print(f"small preset, {dtype} base, asymlora (3 routed heads on the MLP), batch {args.batch}, "
          f"{torch.get_num_threads()} threads")
    print("| batches | layout | tokens computed per batch | padding | s per step | packed / padded |\n|---|---|---|---|---|---|")
    for order, groups in batch_orders(dataset, args.batch, args.batches).items():
        items = [[dataset[i] for i in group] for group in groups]
        data = {layout: [collate(group) for group in items] for layout, collate in collators.items()}
        real = sum(len(it["input_ids"]) for group in items for it in group) / len(items)
        computed = {"padded": sum(b["input_ids"].numel() for b in data["padded"]) / len(items), "packed": real}
        step(model, data["padded"][0], config.balance_coef)  # warm-up
        times = {layout: [] for layout in data}
        for _ in range(args.rounds):
            for layout in data:
                start = time.perf_counter()
                for batch in data[layout]:
                    step(model, batch, config.balance_coef)
                times[layout].append((time.perf_counter() - start) / len(items))
                model.zero_grad(set_to_none=True)
        padded = statistics.median(times["padded"])
        for layout in data:
            seconds = statistics.median(times[layout])
            print(f"| {order} | {layout} | {computed[layout]:.0f} | {1 - real / computed[layout]:.1%} | "
                  f"{seconds:.3f} | {seconds / padded:.2f} |")


if __name__ == "__main__":
    main()
