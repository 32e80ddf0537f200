"""Do the routers specialise by task? Mutual information between the task and each token's top expert, per layer,
for routed schemes trained at several balance-loss coefficients on the kit's recipe (`make compare`'s budget).

For every (scheme, coefficient) one run is trained and evaluated as `make compare` does (same mixture, steps, batch,
seed; only `--balance_coef` differs), then teacher-forced over `--batches` training batches per task, counting per
layer how many of a task's tokens have expert e as their top expert. With tasks weighted equally,

    MI(layer) = sum_t,e p(t) p(e|t) log2( p(e|t) / p(e) ),   p(t) = 1/T,   p(e) = mean_t p(e|t)

in bits: 0 when every task picks the experts alike, at most log2(min(T, E)) (1.58 for 4 tasks and 3 experts) when
the top expert names the task. The plug-in estimate's bias is about (T-1)(E-1) / (2 N ln 2) bits for N tokens per
layer (~1e-4 here), reported beside it. Also: the gate-mass load per task x expert per layer (heatmaps) and the
kit's accuracies with their intervals, so a specialisation can be weighed against what it costs.

python -m llava.kit.router_specialisation --out runs/router [--coefs 0,0.05,0.5] [--schemes asymlora,moe_lora]
    [--variant "NAME=TRAINING FLAGS" ...]

A variant (repeatable) is the preset's coefficient with training flags added (e.g. `--variant "router_lr10=--router_lr
2e-3"`), trained under OUT/NAME and tested against the preset's run like a coefficient.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex

import torch

from llava.adapters.attached import adapter_batch, adapter_config, routing_state
from llava.adapters.routing import label_router_layers
from llava.adapters.state import mutual_information
from llava.analysis.interference import task_batches
from llava.checkpoint import base_of, load_checkpoint_model
from llava.console import progress_bars_only_on_a_terminal
from llava.constants import IGNORE_INDEX
from llava.data.dataset import SupervisedDataset
from llava.kit.compare import (
    SCHEMES,
    check_settings,
    compare_settings,
    kit_manifest,
    parser,
    run_one,
    workers_for,
)
from llava.kit.router_plots import plot_mutual_information
from llava.kit.router_report import PRESET_COEF, costs, report
from llava.kit.router_training import router_training
from llava.kit.stats import as_array, interval
from llava.kit.table import COLUMNS
from llava.kit.workers import in_workers
from llava.model.image import ImageTransform
from llava.train.plots import plot_router_load

ROUTED_SCHEMES = [s for s, settings in SCHEMES.items() if settings.get("balance_coef")]


def top_expert_counts(model, batches: dict[int, list[dict]], num_tasks: int, answers_only: bool = False):
    """({layer: [T, E] top-expert token counts}, {layer: [T, E] gate mass}) over every batch: all tokens (image,
    prompt and answer) or only the supervised answer tokens, where the tasks' outputs differ."""
    routing_state(model).start_load_tracking(num_tasks, adapter_config(model).num_experts, top_counts=True)
    label_router_layers(model)
    with torch.no_grad():
        for task_batches_ in batches.values():
            for batch in task_batches_:
                inputs = {k: v for k, v in batch.items() if k not in ("task_ids", "sample_index")}
                mask = batch["labels"] != IGNORE_INDEX if answers_only else batch["attention_mask"]
                with adapter_batch(model, task_ids=batch["task_ids"], token_mask=mask, labels=batch["labels"]) as state:
                    # a prompt router reads the prompt whichever tokens are counted (answers only: none of them)
                    state.instance_mask = batch["attention_mask"].bool() & (batch["labels"] == IGNORE_INDEX)
                    model(**inputs)
    state = routing_state(model)
    return ({k: v.clone().cpu() for k, v in state.layer_top.items()},
            {k: v.clone().cpu() for k, v in state.layer_load.items()})


def measure(checkpoint: str, data: str, image_folder: str, out: str, batches: int = 4, batch_size: int = 8) -> dict:
    model, tokenizer, image_processor = load_checkpoint_model(checkpoint)
    base = base_of(model)
    dataset = SupervisedDataset(data, tokenizer, ImageTransform(image_processor, base.image_aspect_ratio),
                                image_folder=image_folder, template=base.template,
                                image_seq_length=model.config.image_seq_length)
    tasks = list(dataset.task_names)
    picked = task_batches(dataset, batch_size, math.ceil(batches / 2), seed=0)  # 2 * draws batches per task
    top, load = top_expert_counts(model, picked, len(tasks))
    per_layer = {layer: mutual_information(top[layer]) for layer in sorted(top)}
    answer_top, _ = top_expert_counts(model, picked, len(tasks), answers_only=True)
    answers = {layer: mutual_information(answer_top[layer]) for layer in sorted(answer_top)}
    tokens = min(float(c.sum()) for c in top.values())
    num_experts = adapter_config(model).num_experts
    bias = (len(tasks) - 1) * (num_experts - 1) / (2 * tokens * math.log(2))
    os.makedirs(out, exist_ok=True)
    total = sum(load.values())
    plot_router_load(total, load, tasks, "expert", os.path.join(out, "router_load.png"))
    best = max(per_layer, key=per_layer.get)
    answer_tokens = min(float(c.sum()) for c in answer_top.values())
    result = {"checkpoint": checkpoint, "batches": batches, "tasks": tasks, "experts": num_experts,
              "mi_bits": per_layer, "mi_mean": sum(per_layer.values()) / len(per_layer), "mi_max": per_layer[best],
              "mi_max_layer": best, "mi_answer_bits": answers, "mi_answer_mean": sum(answers.values()) / len(answers),
              "mi_answer_bias": bias * tokens / answer_tokens, "answer_tokens_per_layer": answer_tokens,
              "mi_ceiling": math.log2(min(len(tasks), num_experts)), "mi_bias": bias, "tokens_per_layer": tokens,
              "top_share": {layer: (c / c.sum(1, keepdim=True).clamp_min(1)).tolist() for layer, c in top.items()},
              "load_share": (total / total.sum(1, keepdim=True).clamp_min(1e-12)).tolist()}
    with open(os.path.join(out, "router.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


def measured(checkpoint: str, data: str, image_folder: str, out: str, batches: int) -> dict:
    """measure()'s result, kept once written (as `make compare` keeps finished runs): a re-run re-reads it."""
    path = os.path.join(out, "router.json")
    if os.path.exists(path):
        with open(path) as f:
            kept = json.load(f)
        if kept.get("checkpoint") == checkpoint and kept.get("batches") == batches:
            return kept
    return measure(checkpoint, data, image_folder, out, batches)


def arguments(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/router")
    ap.add_argument("--compare", default="runs/compare",
                    help="`make compare`'s output: its runs are the preset coefficient's (trained there if missing)")
    ap.add_argument("--coefs", default=f"0,{PRESET_COEF:g},0.5")
    ap.add_argument("--schemes", default="asymlora,moe_lora")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batches", type=int, default=4, help="teacher-forced batches of 8 per task for the counts")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                    help="the preset's coefficient with these training flags added, under OUT/NAME (repeatable)")
    args, recipe = ap.parse_known_args(argv)
    return args, parser().parse_args(recipe)  # the recipe flags of `make compare` (--steps, --test, --data, ...)


def main(argv=None):
    progress_bars_only_on_a_terminal()  # a log file gets no carriage-return floods
    args, kit = arguments(argv)
    schemes = args.schemes.split(",")
    if any(s not in ROUTED_SCHEMES for s in schemes):
        raise SystemExit(f"routed schemes are {ROUTED_SCHEMES}, not {schemes}")
    coefs = [float(c) for c in args.coefs.split(",")]
    variants = dict(variant_flags(v) for v in args.variant)
    settings = compare_settings(kit)
    check_settings(args.out, {**settings, "seed": args.seed})
    if PRESET_COEF in coefs or variants:
        check_settings(args.compare, settings)
    manifest = kit_manifest(kit.data, kit)
    images = manifest["pairs_root"]

    if variants and PRESET_COEF not in coefs:  # the preset is what every variant is tested against
        coefs.append(PRESET_COEF)
    plan = [(None, c, ["--balance_coef", str(c)]) for c in coefs]  # (variant, coefficient, training flags)
    plan += [(name, PRESET_COEF, flags) for name, flags in variants.items()]

    def folder(name: str | None, coef: float) -> str:  # where a setting's measurements go
        return os.path.join(args.out, name or f"coef{coef:g}")

    def runs(name: str | None, coef: float) -> str:  # where its runs live: the preset's are `make compare`'s
        return args.compare if name is None and coef == PRESET_COEF else folder(name, coef)

    jobs = [(run_one, s, args.seed, manifest, images, runs(name, c), kit.steps, kit.model, kit.batch, flags)
            for name, c, flags in plan for s in schemes]
    in_workers(jobs, workers_for(jobs, args.workers), "router runs")
    rows = []
    for name, c, flags in plan:
        for s in schemes:
            run = os.path.join(runs(name, c), s, f"seed{args.seed}")
            with open(os.path.join(run, "eval", "outcomes.json")) as f:
                outcomes = json.load(f)
            result = measured(run, manifest["mixture"], images, os.path.join(folder(name, c), s), args.batches)
            accuracy = {col: interval(as_array([outcomes[col]])) for col in COLUMNS}
            rows.append({"scheme": s, "coef": c, "variant": name, "flags": shlex.join(flags) if name else "",
                         **result, "training": router_training(run), "accuracy": accuracy, "outcomes": outcomes})
    write_outputs(rows, args.out)


def write_outputs(rows: list[dict], out: str) -> None:
    text = report(rows) + "\n\n" + costs(rows)
    for row in rows:
        del row["outcomes"]
    with open(os.path.join(out, "router.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(out, "router.json"), "w") as f:
        json.dump(rows, f, indent=1)
    plot_mutual_information(rows, os.path.join(out, "router_mi.png"), "mi_bits", "all tokens")
    plot_mutual_information(rows, os.path.join(out, "router_mi_answers.png"), "mi_answer_bits", "answer tokens")
    print(text)


def variant_flags(text: str) -> tuple[str, list[str]]:
    name, sep, flags = text.partition("=")
    if not sep or not name or "/" in name or not flags.strip():
        raise SystemExit(f"--variant takes NAME=FLAGS (e.g. router_lr10=--router_lr 2e-3), not {text!r}")
    return name, shlex.split(flags)


if __name__ == "__main__":
    main()
