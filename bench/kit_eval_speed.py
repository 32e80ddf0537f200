"""Where the kit's evaluation time goes, and what batching buys: one checkpoint, the held-out tasks of a mixture.

python bench/kit_eval_speed.py --checkpoint runs/compare/lora/seed0 --data playground/data/mixture \
    [--batch-sizes 16,64] [--questions 128]

For every batch size, on the same first --questions questions of every task (and of the paired benchmark): seconds
per question, and the share of time in the vision tower, in prefill forwards (the whole prompt), in decoding
forwards (one token per row, KV cache) and in the rest (image decoding and transforms, tokenization, generate's own
loop). Ratios are to the first batch size, measured side by side in one process.

First, the LM head alone on the input generate's prefill gives it (the last position of a [batch, prompt, hidden]
hidden state: a strided view) and on the same values made contiguous (what llava.eval.generate.contiguous_head_input
does), side by side: the cause of the evaluation time this bench found.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict

import torch

from llava.checkpoint import load_checkpoint_model, template_of
from llava.eval.generate import read_questions, run
from llava.kit.easy_vqa_mixture import MME_SUBDIR
from llava.kit.evaluate import MAX_NEW_TOKENS, task_id_for
from llava.kit.scores import pair_questions


class Clock:
    """Wall time inside the vision tower and the LM's forwards, prefill (seq > 1) and decode (seq == 1) apart."""

    def __init__(self, model):
        self.seconds = defaultdict(float)
        self._start = {}
        inner = model.model
        self._watch(inner.vision_tower, lambda args, kw: "vision")
        self._watch(inner.language_model, lambda args, kw: "prefill" if self._seq(args, kw) > 1 else "decode")

    @staticmethod
    def _seq(args, kwargs):
        x = kwargs.get("inputs_embeds")
        if x is None:
            x = kwargs.get("input_ids", args[0] if args else None)
        return x.shape[1]

    def _watch(self, module, kind):
        def before(mod, args, kwargs):
            self._start[id(mod)] = (kind(args, kwargs), time.perf_counter())

        def after(mod, args, kwargs, out):
            name, t0 = self._start.pop(id(mod))
            self.seconds[name] += time.perf_counter() - t0

        module.register_forward_pre_hook(before, with_kwargs=True)
        module.register_forward_hook(after, with_kwargs=True)


def head_layout(model, batch_sizes: list[int], prompt: int = 600, repeats: int = 3) -> None:
    """Seconds per LM-head call on prefill's strided last position vs a contiguous copy (F.linear: no hooks)."""
    weight = model.get_output_embeddings().weight
    for batch_size in batch_sizes:
        hidden = torch.randn(batch_size, prompt, weight.shape[1], dtype=weight.dtype)
        times = {}
        for name, contiguous in (("strided", False), ("contiguous", True)):
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                last = hidden[:, -1:]
                torch.nn.functional.linear(last.contiguous() if contiguous else last, weight)
                best = min(best, time.perf_counter() - start)
            times[name] = best
        print(f"LM head, batch {batch_size:3d}, {weight.dtype}: strided {times['strided']:.3f} s, contiguous "
              f"{times['contiguous']:.4f} s  (x{times['strided'] / times['contiguous']:.0f})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True, help="a mixture folder written by llava.kit.easy_vqa_mixture")
    ap.add_argument("--batch-sizes", default="16,64")
    ap.add_argument("--questions", type=int, default=128, help="per task")
    args = ap.parse_args(argv)
    with open(os.path.join(args.data, "manifest.json")) as f:
        manifest = json.load(f)
    t0 = time.perf_counter()
    model, tokenizer, image_processor = load_checkpoint_model(args.checkpoint, dtype="bf16")
    print(f"model load: {time.perf_counter() - t0:.1f} s; threads {torch.get_num_threads()}")
    head_layout(model, [int(b) for b in args.batch_sizes.split(",")])
    version = template_of(model)
    folder = os.path.dirname(manifest["train"][manifest["tasks"][0]])
    tasks = {t: (read_questions(p)[:args.questions], folder) for t, p in manifest["eval"].items()}
    tasks["pairs"] = (pair_questions(manifest["pairs_root"])[:args.questions],
                      os.path.join(manifest["pairs_root"], MME_SUBDIR))
    clock = Clock(model)
    base = {}
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        total = 0.0
        for task, (rows, images) in tasks.items():
            clock.seconds.clear()
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                run(model, tokenizer, image_processor, rows, os.path.join(tmp, "a.jsonl"), image_folder=images,
                    conv_mode=version, batch_size=batch_size, max_new_tokens=MAX_NEW_TOKENS[task],
                    task_id=task_id_for(model, "vqa" if task == "pairs" else task), progress=False)
                took = time.perf_counter() - start
            total += took
            parts = {k: clock.seconds[k] / took for k in ("vision", "prefill", "decode")}
            rest = 1 - sum(parts.values())
            ratio = f"  x{base[task] / took:.2f} vs batch {args.batch_sizes.split(',')[0]}" if task in base else ""
            base.setdefault(task, took)
            print(f"batch {batch_size:3d} {task:8s} {1000 * took / len(rows):6.1f} ms/question  "
                  + "  ".join(f"{k} {v:4.0%}" for k, v in parts.items()) + f"  rest {rest:4.0%}{ratio}")
        ratio = f"  x{base['total'] / total:.2f}" if "total" in base else ""
        base.setdefault("total", total)
        print(f"batch {batch_size:3d} all tasks {total:.1f} s{ratio}")


if __name__ == "__main__":
    main()
