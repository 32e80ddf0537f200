"""Task Interference Score between every pair of tasks, for the A and the B matrices separately, and the router
load per task x expert per layer, from a trained checkpoint.

Definition (MixLoRA, Shen et al. 2024, Fig. 2; here exactly): with the checkpoint's adapter parameters theta and a
parameter set M (every `lora_A`, or every `lora_B`),

    I[i, j] = mean over R draws of  ( L_i(theta) - L_i(theta - eta * grad_M L_j(theta)) ) / L_i(theta)

L_i is the LM loss (mean over supervised tokens, no balance loss) of a batch of task i; grad_M L_j the gradient of
the loss of a *different* batch of task j with respect to M only; eta a plain SGD step (`--step-size`). Row i is the
task affected, column j the task stepped on. I > 0: a step on j lowers i's loss (transfer); I < 0: it raises it
(interference). The diagonal uses two different batches of the same task, so it measures generalisation within the
task, not memorisation. Task-routed checkpoints route each batch with its own task's id.

python -m llava.analysis.interference --checkpoint DIR --data vqa=a.json,vqa_hex=b.json --image-folder F --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
import random

import torch

from llava.adapters.attached import adapter_batch, adapter_config, routing_state
from llava.adapters.routing import label_router_layers
from llava.adapters.state import load_shares
from llava.analysis.heatmaps import plot_interference
from llava.checkpoint import base_of, load_checkpoint_model
from llava.console import progress_bars_only_on_a_terminal
from llava.data.collator import SupervisedCollator
from llava.data.dataset import SupervisedDataset
from llava.model.image import ImageTransform
from llava.train.plots import plot_router_load
from llava.train.supervised_logits import supervised_logits_only

MATRICES = ("A", "B")


def task_batches(dataset, batch_size: int, draws: int, seed: int) -> dict[int, list[dict]]:
    """{task_id: [batch, ...]}: 2 * draws disjoint batches per task (step and measure batches never coincide)."""
    by_task: dict[int, list[int]] = {}
    for index in range(len(dataset)):
        by_task.setdefault(dataset.records[index].task_id, []).append(index)
    rng = random.Random(seed)
    collate = SupervisedCollator(dataset.tokenizer.pad_token_id)
    out = {}
    for task, indices in sorted(by_task.items()):
        need = 2 * draws * batch_size
        if len(indices) < need:
            raise ValueError(f"task {dataset.task_names[task]!r} has {len(indices)} samples; "
                             f"{draws} draws x 2 batches x {batch_size} need {need}")
        picked = rng.sample(indices, need)
        out[task] = [collate([dataset[k] for k in picked[b * batch_size:(b + 1) * batch_size]])
                     for b in range(2 * draws)]
    return out


def batch_loss(model, batch: dict, task: int) -> torch.Tensor:
    inputs = {k: v for k, v in batch.items() if k not in ("task_ids", "sample_index")}
    with adapter_batch(model, task_ids=batch["task_ids"], token_mask=batch["attention_mask"], labels=batch["labels"]):
        return model(**supervised_logits_only(inputs)).loss  # the loss of every position, the head on labelled ones


def adapter_params(model, matrix: str) -> list[torch.nn.Parameter]:
    name = f"lora_{matrix}"
    params = [p for n, p in model.named_parameters() if n.endswith(name)]
    if not params:
        raise ValueError(f"the checkpoint's model has no {name} parameters")
    return params


def interference(model, batches: dict[int, list[dict]], step_size: float) -> dict[str, torch.Tensor]:
    """{"A": [T, T], "B": [T, T]} Task Interference Scores (rows: task measured, columns: task stepped on)."""
    tasks = sorted(batches)
    draws = len(batches[tasks[0]]) // 2
    scores = {m: torch.zeros(len(tasks), len(tasks)) for m in MATRICES}
    model.eval()  # no dropout: the only change between the two losses is the step
    for matrix in MATRICES:
        params = adapter_params(model, matrix)
        for r in range(draws):
            with torch.no_grad():
                base = {i: batch_loss(model, batches[i][2 * r], i).item() for i in tasks}
            for col, j in enumerate(tasks):
                grads = torch.autograd.grad(batch_loss(model, batches[j][2 * r + 1], j), params)
                with torch.no_grad():
                    for p, g in zip(params, grads):
                        p.sub_(step_size * g)
                    for row, i in enumerate(tasks):
                        after = batch_loss(model, batches[i][2 * r], i).item()
                        scores[matrix][row, col] += (base[i] - after) / base[i] / draws
                    for p, g in zip(params, grads):
                        p.add_(step_size * g)
    return scores


def router_load(model, batches: dict[int, list[dict]], num_tasks: int):
    """(total [T, E], {layer: [T, E]}) gate mass per task and expert over every batch, or None without routers."""
    config = adapter_config(model)
    if config.num_experts <= 1:
        return None
    routing_state(model).start_load_tracking(num_tasks, config.num_experts)
    label_router_layers(model)
    with torch.no_grad():
        for task, task_batches_ in batches.items():
            for batch in task_batches_:
                batch_loss(model, batch, task)
    state = routing_state(model)
    return state.load.clone(), {k: v.clone() for k, v in state.layer_load.items()}


def analyse(checkpoint: str, data: str, image_folder: str, out: str, batch_size: int = 8, draws: int = 3,
            step_size: float = 1e-3, seed: int = 0) -> dict:
    model, tokenizer, image_processor = load_checkpoint_model(checkpoint)
    base = base_of(model)
    dataset = SupervisedDataset(data, tokenizer, ImageTransform(image_processor, base.image_aspect_ratio),
                                image_folder=image_folder, template=base.template,
                                image_seq_length=model.config.image_seq_length)
    trained_tasks = base.task_names or dataset.task_names
    if list(dataset.task_names) != list(trained_tasks):
        raise ValueError(f"{data}: tasks {dataset.task_names} differ from the checkpoint's {trained_tasks} "
                         "(give the same mixture, same order)")
    torch.manual_seed(seed)
    batches = task_batches(dataset, batch_size, draws, seed)
    scores = interference(model, batches, step_size)
    names = [dataset.task_names[t] for t in sorted(batches)]
    os.makedirs(out, exist_ok=True)
    result = {"checkpoint": checkpoint, "scheme": adapter_config(model).scheme, "tasks": names,
              "step_size": step_size, "batch_size": batch_size, "draws": draws,
              "rows": "task measured (i)", "columns": "task stepped on (j)",
              **{f"interference_{m}": scores[m].tolist() for m in MATRICES}}
    plot_interference(scores, names, os.path.join(out, "interference.png"),
                      title=f"Task Interference Score, {result['scheme']} (eta={step_size})")
    load = router_load(model, batches, len(dataset.task_names))
    if load is not None:
        total, per_layer = load
        result["router_load"] = load_shares(total).tolist()
        unit = adapter_config(model).spec.load_unit
        plot_router_load(total, per_layer, list(dataset.task_names), unit, os.path.join(out, "router_load.png"))
    with open(os.path.join(out, "interference.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


def main(argv=None):
    progress_bars_only_on_a_terminal()  # a log file gets no carriage-return floods
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True, help="the training mixture spec: name=file.json,name=file.json")
    ap.add_argument("--image-folder", default="")
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--draws", type=int, default=3, help="batch pairs averaged per cell")
    ap.add_argument("--step-size", type=float, default=1e-3, help="the SGD step eta")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    result = analyse(args.checkpoint, args.data, args.image_folder, args.out, args.batch_size, args.draws,
                     args.step_size, args.seed)
    for m in MATRICES:
        print(f"interference {m} (rows: measured, columns: stepped on; {', '.join(result['tasks'])}):")
        for name, row in zip(result["tasks"], result[f"interference_{m}"]):
            print(f"  {name:>10} " + " ".join(f"{v:+.4f}" for v in row))
    print(f"wrote {args.out}/interference.json, interference.png" + (", router_load.png" if "router_load" in result
                                                                         else ""))


if __name__ == "__main__":
    main()
