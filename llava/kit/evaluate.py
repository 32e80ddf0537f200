"""Evaluate one checkpoint on the easy-vqa mixture's held-out tasks and paired yes/no benchmark, blind baseline beside.

Task-aware checkpoints (asymlora with per-task heads) answer each task with its own task id; routed and plain ones
get no task id (they see only the question, as at deployment). The paired benchmark is asked as the `vqa` task.
Answers are written per task (JSONL, resumable) next to the scores.
"""

from __future__ import annotations

import json
import os

import torch

from llava.adapters.attached import adapter_config
from llava.checkpoint import load_checkpoint_model, template_of
from llava.eval.generate import read_questions, run
from llava.eval.jsonl import read_jsonl
from llava.kit.easy_vqa_mixture import MME_SUBDIR
from llava.kit.scores import (
    BlindBaseline,
    pair_outcomes,
    pair_questions,
    score_pairs,
    score_task,
    task_outcomes,
)
from llava.model.cpu_dtype import cpu_compute_dtype

MAX_NEW_TOKENS = {"vqa": 6, "vqa_hex": 8, "caption": 16, "vqg": 16, "pairs": 3}


def task_id_for(model, task: str) -> int | None:
    config = adapter_config(model)
    if config is None or config.num_tasks <= 1:
        return None
    return config.task_id(task)


def _answer(model, tokenizer, image_processor, questions, path, image_folder, task, batch_size, version):
    run(model, tokenizer, image_processor, questions, path, image_folder=image_folder, conv_mode=version,
        batch_size=batch_size, max_new_tokens=MAX_NEW_TOKENS[task], model_id=task,
        task_id=task_id_for(model, "vqa" if task == "pairs" else task), progress=False)
    return {row["question_id"]: row["text"] for row in read_jsonl(path)}


def evaluate(checkpoint: str, manifest: dict, out: str, batch_size: int = 64) -> dict:
    """{task: {metric: percent}} for every eval task of the manifest and `pairs`; also written to out/scores.json,
    and every question's outcome per table column to out/outcomes.json (what the intervals and tests use)."""
    # as the kit trains: a bf16 base where the CPU runs bf16 natively (else fp32), fp32 adapters
    dtype = "bf16" if torch.cuda.is_available() or cpu_compute_dtype() == "bf16" else "fp32"
    model, tokenizer, image_processor = load_checkpoint_model(checkpoint, dtype=dtype)
    version = template_of(model)
    folder = os.path.dirname(manifest["train"][manifest["tasks"][0]])
    os.makedirs(out, exist_ok=True)
    scores, replies = {}, {}
    for task, path in manifest["eval"].items():
        rows = read_questions(path)
        replies[task] = _answer(model, tokenizer, image_processor, rows, os.path.join(out, f"answers_{task}.jsonl"),
                                folder, task, batch_size, version)
        scores[task] = score_task(task, rows, replies[task])
    root = manifest["pairs_root"]
    replies["pairs"] = _answer(model, tokenizer, image_processor, pair_questions(root),
                               os.path.join(out, "answers_pairs.jsonl"), os.path.join(root, MME_SUBDIR), "pairs",
                               batch_size, version)
    scores["pairs"] = score_pairs(root, replies["pairs"])
    with open(os.path.join(out, "outcomes.json"), "w") as f:
        json.dump(column_outcomes(manifest, replies), f)
    with open(os.path.join(out, "scores.json"), "w") as f:
        json.dump(scores, f, indent=1)
    return scores


def column_outcomes(manifest: dict, replies: dict[str, dict]) -> dict[str, dict[str, bool]]:
    """{table column: {unit: right}} from {task: {question_id: reply}} (task "pairs": the paired benchmark)."""
    by_task = {task: task_outcomes(task, read_questions(path), replies[task]) for task, path in manifest["eval"].items()}
    pairs = pair_outcomes(manifest["pairs_root"], replies["pairs"])
    vqa = by_task.get("vqa", {})
    out = {"colour": vqa.get("color"), "shape": vqa.get("shape"), "yes/no": vqa.get("yesno"),
           "hex": by_task.get("vqa_hex", {}).get("vqa_hex"), "caption": by_task.get("caption", {}).get("caption"),
           "vqg": by_task.get("vqg", {}).get("vqg"), "pairs acc": pairs["acc"], "pairs acc+": pairs["acc_plus"]}
    return {k: v for k, v in out.items() if v is not None}


def blind_scores(manifest: dict) -> dict:
    """The same table for the blind (question-only) baseline: BlindBaseline's replies, scored alike."""
    blind = BlindBaseline(manifest["train"])
    scores = {}
    for task, path in manifest["eval"].items():
        rows = read_questions(path)
        scores[task] = score_task(task, rows, blind.replies(task, rows))
    scores["pairs"] = score_pairs(manifest["pairs_root"], blind.pair_replies(pair_questions(manifest["pairs_root"])))
    return scores


def blind_outcomes(manifest: dict) -> dict[str, dict[str, bool]]:
    blind = BlindBaseline(manifest["train"])
    replies = {task: blind.replies(task, read_questions(path)) for task, path in manifest["eval"].items()}
    replies["pairs"] = blind.pair_replies(pair_questions(manifest["pairs_root"]))
    return column_outcomes(manifest, replies)


def headline(scores: dict) -> dict[str, float]:
    """The columns of the comparison table: colour, shape, yes/no, hex, caption, vqg, paired acc and acc+."""
    vqa = scores.get("vqa", {})
    out = {"colour": vqa.get("color"), "shape": vqa.get("shape"), "yes/no": vqa.get("yesno"),
           "hex": scores.get("vqa_hex", {}).get("vqa_hex"), "caption": scores.get("caption", {}).get("caption"),
           "vqg": scores.get("vqg", {}).get("vqg"), "pairs acc": scores["pairs"]["acc"],
           "pairs acc+": scores["pairs"]["acc_plus"]}
    return {k: v for k, v in out.items() if v is not None}
