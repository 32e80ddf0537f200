"""Part `decode`: greedy decoding tokens/s of the 7B-shaped LLaVA per scheme, batch 1 and 16, one image per prompt.

Rows: the base alone ("merged": any adapter folded into W exactly - lora, task-head asymlora - decodes at this
speed), then each scheme unmerged as llava.eval.generate and the server load it (adapter weights cast to bf16 once,
at load: llava/checkpoint.py), and asymlora with fp32 adapter weights cast in every layer at every step (what
loading did before), and the merged base and asymlora with compiled decoding (a static KV cache, the decoding step
compiled whole by transformers' generate: CUDA graphs). Decode time is the time of N new tokens minus the time of 1
(the prefill, best of the runs), so tokens/s counts decode steps only; each row gives the median over 5 runs of 128
new tokens, with the fastest and slowest run's ms per step. Per row also short-answer evaluation's questions/s:
batch 8 with an image, 4 new tokens, prefill included, as `scripts/eval/*.sh` answer (median of the runs).
"""

from __future__ import annotations

import statistics

import torch
from common import build_model, deadline, image_batch, remove_adapters, run_args, timed, with_adapters, write_part
from transformers import CompileConfig

from llava.adapters.attached import adapter_batch, routing_state
from llava.adapters.inject import cast_adapters
from llava.inference import contiguous_head_input


def prompts(model, batch: int, device: str, dtype: torch.dtype, text: int):
    inputs = image_batch(model.config, batch, 1 + model.config.image_seq_length + text, device, dtype, prompt=text)
    inputs.pop("labels")
    return inputs


def generate(model, inputs: dict, new_tokens: int, compiled: bool = False):
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0,
                  eos_token_id=2)
    if compiled:  # as Generator(compiled=True): a static cache, the decoding step compiled whole (CUDA graphs)
        kwargs["cache_implementation"] = "static"
        if model.device.type == "cuda":  # transformers compiles on a GPU only (the smoke run: the static cache alone)
            kwargs["compile_config"] = CompileConfig(fullgraph=True)
    if routing_state(model) is not None:
        with adapter_batch(model, token_mask=inputs["attention_mask"]):
            return model.generate(**inputs, **kwargs)
    return model.generate(**inputs, **kwargs)


def questions_per_s(model, inputs, answer_tokens, device, runs: int, compiled: bool = False) -> dict:
    """Short-answer evaluation as scripts/eval/*.sh runs it: a batch of questions with an image, a few new tokens,
    prefill included (what the planner's evaluation estimate needs)."""
    generate(model, inputs, answer_tokens, compiled)  # warm-up (and the compile)
    seconds = statistics.median(timed(lambda: generate(model, inputs, answer_tokens, compiled), device)
                                for _ in range(runs))
    return {"questions_per_s": inputs["input_ids"].shape[0] / seconds, "batch": inputs["input_ids"].shape[0],
            "answer_tokens": answer_tokens, "s_per_batch": seconds}


def tokens_per_s(model, inputs, new_tokens, device, runs: int, compiled: bool = False) -> dict:
    generate(model, inputs, new_tokens, compiled)  # warm-up (and the compile, which is not timed)
    prefill = min(timed(lambda: generate(model, inputs, 1, compiled), device) for _ in range(runs))
    steps = sorted(1000 * (timed(lambda: generate(model, inputs, new_tokens, compiled), device) - prefill)
                   / (new_tokens - 1) for _ in range(runs))
    batch = inputs["input_ids"].shape[0]
    median = statistics.median(steps)
    return {"prefill_s": prefill, "runs": runs, "tokens_per_s": batch * 1000 / max(median, 1e-9),
            "ms_per_step": median, "ms_per_step_min": steps[0], "ms_per_step_max": steps[-1]}


# (label, scheme, adapters cast to bf16 at load, compiled decoding)
VARIANTS = [("merged (base alone)", None, True, False), ("lora", "lora", True, False),
            ("moe_lora", "moe_lora", True, False), ("asymlora", "asymlora", True, False),
            ("mixlora", "mixlora", True, False), ("asymlora, fp32 adapters cast at every step", "asymlora", False, False),
            ("merged (base alone), compiled", None, True, True), ("asymlora, compiled", "asymlora", True, True)]


def main():
    args = run_args(__doc__)
    time_left = deadline(args.budget)
    batches, new_tokens, text, runs = ((1, 4), 6, 8, 2) if args.smoke else ((1, 16), 128, 32, 5)
    eval_batch, answer_tokens = (2, 2) if args.smoke else (8, 4)  # the eval scripts' BATCH, a short answer + </s>
    model = build_model(args.smoke, args.device, args.dtype).eval()
    contiguous_head_input(model)
    result = {"part": "decode", "new_tokens": new_tokens, "prompt_tokens": 1 + model.config.image_seq_length + text,
              "attn": model.config._attn_implementation, "rows": {}}
    with torch.no_grad():
        for label, scheme, cast, compiled in VARIANTS:
            row = {}
            if scheme is not None:
                with_adapters(model, scheme, args.smoke)
                model.eval()  # new adapter modules start in training mode (dropout, router statistics)
                if cast:
                    cast_adapters(model, args.dtype)
            try:
                for b in batches:
                    if not time_left():
                        row[f"batch{b}"] = {"error": "skipped: the part's time budget ran out"}
                        continue
                    row[f"batch{b}"] = tokens_per_s(model, prompts(model, b, args.device, args.dtype, text),
                                                    new_tokens, args.device, runs, compiled)
                if time_left():
                    row["eval"] = questions_per_s(model, prompts(model, eval_batch, args.device, args.dtype, text),
                                                  answer_tokens, args.device, runs, compiled)
            finally:
                if scheme is not None:
                    remove_adapters(model)
            result["rows"][label] = row
            print(label, row, flush=True)
            write_part(args.out, "decode", result)
    write_part(args.out, "decode", result)


if __name__ == "__main__":
    main()
