"""Part `train`: one optimizer step of the 7B-shaped LLaVA per scheme: seconds, tokens/s, MFU, peak memory against
`llava.train.plan`'s prediction.

The step is LlavaTrainer's, written out so it can be timed alone: task ids and masks to the routers, the LM head on
labelled positions only, bf16 autocast (the Trainer's `--bf16`), activation checkpointing with the input-grad hook on
the language model's embeddings alone (LlavaTrainer), the balance loss, backward, clipping at 1.0 and fused AdamW
with the projector in its own group. One process, no DeepSpeed: what a single GPU does per micro-batch. Rows: each
scheme's preset, lora at r=32 (the routed schemes' rank), and asymlora with checkpointing on as few decoder layers as
the card's memory needs by the planner (`--checkpoint_layers auto`).

FLOP model (per step, recompute not counted, so this is MFU not HFU): frozen LM linears 4 N T (forward + input
gradient, no weight gradient), causal attention 6 s h per token and layer (forward 2, backward 4), LM head 4 V h per
labelled position, adapters and token routers 6 N_a T (all heads run: dense gates), routers that read once per sample
(mixlora's, prompt routers) 6 N_r per sample, mixlora's per-token factor selection 6 E^2 T per layer, projector 6 N_p
per image token, frozen vision tower forward 2 N_v per patch + 4 s_v^2 h_v per image and layer. Checked against
torch's FlopCounterMode on the toy model (tests/test_mfu_numerator.py).
"""

from __future__ import annotations

import statistics

import torch
from common import (
    AUTO_CHECKPOINTING,
    TRAIN_SCHEMES,
    build_model,
    datasheet_peak,
    deadline,
    image_batch,
    matmul_flops_per_s,
    remove_adapters,
    run_args,
    scheme_and_rank,
    timed,
    with_adapters,
    write_part,
)
from torch import nn

from llava.adapters.attached import routing_state
from llava.adapters.inject import adapter_modules
from llava.adapters.layer import AdapterLinear
from llava.adapters.routing import Router, label_router_layers
from llava.data.token_count import DataTokens
from llava.model.anatomy import language_model, projector
from llava.train import estimate, plan, plan_model
from llava.train.activation_checkpointing import checkpoint_first_layers, language_inputs_require_grad
from llava.train.supervised_logits import accepts_logits_mask, supervised_logits_only

GIB = 1024**3


def step_fn(model, config, batch, device, optimizer, params):
    state = routing_state(model)
    task_ids = torch.arange(batch["input_ids"].shape[0], device=device) % 3

    def step():
        state.begin_batch(task_ids, batch["attention_mask"], batch["labels"])
        state.aux_grad_scale = config.balance_coef
        with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16):
            out = model(**(supervised_logits_only(batch) if accepts_logits_mask(type(model)) else batch))
        balance = state.finish_forward()
        loss = out.loss
        if balance is not None and config.balance_coef > 0:
            loss = loss + (config.balance_coef * balance).to(loss.dtype).detach()  # gradient via AttachAux
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def make_optimizer(model, device):
    proj = {id(p) for p in projector(model).parameters()}
    adapters = [p for p in model.parameters() if p.requires_grad and id(p) not in proj]
    groups = [{"params": adapters, "lr": 2e-4, "weight_decay": 0.0},
              {"params": [p for p in projector(model).parameters() if p.requires_grad], "lr": 2e-5, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, fused=device.startswith("cuda"), foreach=None if device.startswith("cuda") else True)


def counts(model) -> dict:
    """Parameter counts the FLOP model multiplies: frozen LM linears, adapter parameters applied to every token, router
    parameters applied once per sample (mixlora's, and routers reading the prompt), mixlora's E x E selection per
    token, the projector and the vision tower."""
    lm = language_model(model)
    adapted = [m for _, m in adapter_modules(model) if isinstance(m, AdapterLinear)]
    per_sample = {id(p) for m in adapted if m.scheme == "mixlora" for n, p in m.named_parameters() if "router" in n}
    per_sample |= {id(p) for m in model.modules() if isinstance(m, Router) and m.router_input == "prompt"
                   for p in m.parameters()}
    proj = {id(p) for p in projector(model).parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad and id(p) not in proj]  # adapters and routers
    return {"lm_linear": sum(m.weight.numel() for m in lm.modules()
                             if isinstance(m, nn.Linear) and not m.weight.requires_grad),
            "adapters": sum(p.numel() for p in trainable if id(p) not in per_sample),
            "sample_routers": sum(p.numel() for p in trainable if id(p) in per_sample),
            "mixlora_selection": sum(m.num_experts ** 2 for m in adapted if m.scheme == "mixlora"),
            "projector": sum(p.numel() for p in projector(model).parameters()),
            "vision": sum(p.numel() for p in model.model.vision_tower.parameters())}


def model_flops(model, n: dict, batch: int, seq: int, labelled: int) -> float:
    text, vision = model.config.text_config, model.config.vision_config
    tokens = batch * seq
    img = model.config.image_seq_length
    patches = (vision.image_size // vision.patch_size) ** 2 + 1
    lm = 4 * n["lm_linear"] * tokens + 6 * seq * text.hidden_size * text.num_hidden_layers * tokens
    head = 4 * text.vocab_size * text.hidden_size * labelled
    adapters = (6 * (n["adapters"] + n["mixlora_selection"]) * tokens + 6 * n["sample_routers"] * batch
                + 6 * n["projector"] * batch * img)
    tower = batch * (2 * n["vision"] * patches + 4 * patches**2 * vision.hidden_size * vision.num_hidden_layers)
    return float(lm + head + adapters + tower)


def planner_prediction(model, name: str, smoke: bool, batch: int, seq: int, peak: float) -> dict:
    """What `python -m llava.train.plan --zero 0 --gpus 1 --batch B --seq S --scheme NAME` predicts (7B): memory, and
    the step time of train/estimate.py (its FLOP count, recompute included, at its assumed MFU on `peak`). At smoke
    size the same formulas on the toy model."""
    if smoke:
        c = plan_model.count(model)
        memory = plan_model.memory_per_gpu(c, 0, 1, 16)
        act = plan_model.activations(model.config, batch, seq, True, True)
        cfg = model.config
    else:
        scheme, rank = scheme_and_rank(name)
        p = plan.plan("7b", scheme, zero=0, gpus=1, bits=16, batch=batch, seq=seq, r=rank)
        c, memory, act, cfg = p["counts"], p["memory"], p["activations_checkpointed"], plan_model.llava_config("7b")
    image = estimate.IMAGE_TOKENS
    data = DataTokens(records=batch, image_records=batch, text_tokens=float(batch * (seq - image)), sampled=batch,
                      how="the benchmark's batch")
    flops = estimate.train_flops(plan.sizes(c, cfg), data)
    total = sum(memory.values()) + act["decoder layers"] + act["logits"]
    return {"predicted_gib": total / GIB, "model_state_gib": sum(memory.values()) / GIB,
            "activations_gib": (act["decoder layers"] + act["logits"]) / GIB, "planner_trainable": c.trainable,
            "planner_flops": flops, "planner_step_s": flops / (peak * estimate.MFU), "planner_mfu": estimate.MFU}


def enable_checkpointing(model) -> None:
    """Every decoder layer checkpointed, the input-grad hook on the language model's embeddings alone (LlavaTrainer)."""
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x; older: the deprecated name
        model.activation_checkpointing_enable()
    else:
        model.gradient_checkpointing_enable()
    language_inputs_require_grad(model)


def checkpoint_as_memory_needs(model, batch: int, seq: int, smoke: bool) -> int:
    """--checkpoint_layers auto on this card (the smoke run: half the layers, to run the code path)."""
    if smoke:
        n = model.config.text_config.num_hidden_layers // 2
    else:
        budget = 0.85 * torch.cuda.get_device_properties(0).total_memory
        n = plan_model.layers_to_checkpoint(model.config, plan_model.count(model), 0, 1, 16, batch, seq, budget)
    checkpoint_first_layers(model, n)
    return n


def measure(model, name, args, batch_size, seq, steps, warmup):
    config = with_adapters(model, name, args.smoke)
    model.train()
    checkpointed = None
    if name.endswith(AUTO_CHECKPOINTING):
        checkpointed = checkpoint_as_memory_needs(model, batch_size, seq, args.smoke)
    try:
        if config.num_experts > 1:
            routing_state(model).start_load_tracking(3, config.num_experts)
            label_router_layers(model)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = make_optimizer(model, args.device)
        batch = image_batch(model.config, batch_size, seq, args.device, args.dtype)
        labelled = int((batch["labels"][:, 1:] != -100).sum())
        step = step_fn(model, config, batch, args.device, optimizer, params)
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        for _ in range(warmup):
            step()
        times = [timed(step, args.device) for _ in range(steps)]
        peak = torch.cuda.max_memory_allocated() / GIB if args.device.startswith("cuda") else None
        n = counts(model)
        return {"step_s": statistics.median(times), "step_s_all": times, "batch": batch_size, "seq": seq,
                "tokens_per_s": batch_size * seq / statistics.median(times), "peak_gib": peak,
                "trainable": sum(p.numel() for p in params), "flops": model_flops(model, n, batch_size, seq, labelled),
                "checkpointed_layers": checkpointed, **planner_prediction(model, name, args.smoke, batch_size, seq,
                                                                          args.peak)}
    finally:
        if checkpointed is not None:
            enable_checkpointing(model)  # every layer again
        remove_adapters(model)
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()


def main():
    args = run_args(__doc__)
    time_left = deadline(args.budget)
    batch_size, seq, steps, warmup = (2, 96, 2, 1) if args.smoke else (16, 2048, 3, 2)
    model = build_model(args.smoke, args.device, args.dtype)
    model.config.use_cache = model.config.text_config.use_cache = False
    enable_checkpointing(model)
    device_name, datasheet = datasheet_peak(args.device)
    ceiling = matmul_flops_per_s(args.device, args.dtype, 256 if args.smoke else 8192)
    args.peak = datasheet or ceiling  # the planner's step time is read against the datasheet where one is known
    result = {"part": "train", "device": device_name, "attn": model.config._attn_implementation,
              "datasheet_bf16_flops": datasheet,
              "head_on_labelled_only": accepts_logits_mask(type(model)), "matmul_bf16_flops": ceiling, "schemes": {}}
    for name in TRAIN_SCHEMES:
        if not time_left():
            result["schemes"][name] = {"error": "skipped: the part's time budget ran out"}
            continue
        size = batch_size
        while True:
            try:
                row = measure(model, name, args, size, seq, steps, warmup)
                break
            except torch.OutOfMemoryError:
                if size == 1:
                    row = {"error": "out of memory at batch 1"}
                    break
                size //= 2
                torch.cuda.empty_cache()
                print(f"{name}: out of memory, retrying with batch {size}", flush=True)
        if "step_s" in row:
            row["mfu"] = row["flops"] / row["step_s"] / datasheet if datasheet else None
            row["of_matmul_ceiling"] = row["flops"] / row["step_s"] / ceiling
            row["planner_flops_utilisation"] = row["planner_flops"] / row["step_s"] / args.peak
        result["schemes"][name] = row
        print(name, {k: v for k, v in row.items() if k != "step_s_all"}, flush=True)
        write_part(args.out, "train", result)  # what is measured so far survives a timeout
    write_part(args.out, "train", result)


if __name__ == "__main__":
    main()
