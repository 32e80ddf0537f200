"""What every recipe ends with: drop (and count) records whose image is not on disk, write OUT/train.json, check it
with the training's own pre-flight, and write OUT/manifest.json last, so a manifest means a complete, checked set."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field

from llava.data.dataset import SupervisedDataset
from llava.data.preflight import preflight, summary
from llava.data.sources import DataError


class RecipeError(Exception):
    """A user-facing problem (missing download, bad input file, used output folder): printed as one line."""


@dataclass
class Built:
    """A recipe's result before publishing: records (with 'task' and 'source') and what was left out and why."""

    records: list[dict] = field(default_factory=list)
    absent: Counter = field(default_factory=Counter)  # source -> records (or VQG rows) whose image is not on disk
    absent_examples: dict[str, list[str]] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)  # recipe-specific facts for the manifest

    def keep(self, record: dict) -> None:
        self.records.append(record)

    def missing(self, source: str, what: str) -> None:
        self.absent[source] += 1
        examples = self.absent_examples.setdefault(source, [])
        if len(examples) < 5:
            examples.append(what)


def read_json(path: str, what: str):
    if not os.path.isfile(path):
        raise RecipeError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RecipeError(f"{path}: not valid JSON ({e})") from e


def file_facts(path: str) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return {"path": os.path.abspath(path), "bytes": os.path.getsize(path), "sha256": digest.hexdigest()}


def _write_json(path: str, obj, indent=None) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=indent)
    os.replace(tmp, path)


def check(train_json: str, image_folder: str, tokenizer=None, workers: int = -1, image_seq_length: int = 576,
          model_max_length: int = 2048) -> int:
    """The training's pre-flight on the written file (structure, every image; tokenization when a tokenizer is
    given). Raises RecipeError with the summary of every problem; returns the number of samples checked."""
    try:
        dataset = SupervisedDataset(train_json, tokenizer, image_folder=image_folder, template="v1",
                                    image_seq_length=image_seq_length, model_max_length=model_max_length,
                                    defer_errors=True)
    except DataError as e:
        raise RecipeError(str(e)) from e
    if workers < 0:
        workers = min(8, os.cpu_count() or 1) if len(dataset) >= 2000 else 0
    bad = preflight(dataset, workers=workers)
    problems = list(dataset.report.skipped) + [(f"{b.file}: sample {b.sample_id}", b.reason) for b in bad]
    if problems:
        report = summary(problems, len(dataset) + len(dataset.report.skipped))
        with open(os.path.join(os.path.dirname(train_json), "preflight_problems.txt"), "w") as f:
            f.write(report + "\n")
        raise RecipeError(report.splitlines()[0] + f" (all of them: {os.path.dirname(train_json)}/preflight_problems.txt)")
    return len(dataset)


def publish(built: Built, out: str, raw: str, recipe: str, options: dict, overwrite: bool = False,
            tokenizer=None, workers: int = -1, run_check: bool = True, log=print) -> dict:
    """Write OUT/train.json, run the pre-flight on it, then OUT/manifest.json; returns the manifest."""
    manifest_path = os.path.join(out, "manifest.json")
    if os.path.exists(manifest_path) and not overwrite:
        raise RecipeError(f"{out} already holds a recipe's output ({manifest_path}); pass --overwrite or another --out")
    if not built.records:
        absent = ", ".join(f"{k} {v:,} (e.g. {built.absent_examples[k][0]})" for k, v in built.absent.items())
        raise RecipeError(f"{recipe}: no record has its image under {raw} (not on disk: {absent or 'nothing read'})")
    os.makedirs(out, exist_ok=True)
    if os.path.exists(manifest_path):
        os.remove(manifest_path)  # overwriting: no manifest may describe the old file while the new one is written
    train_json = os.path.join(out, "train.json")
    _write_json(train_json, built.records)
    checked = check(train_json, raw, tokenizer, workers) if run_check else None
    manifest = {
        "recipe": recipe, "train": os.path.abspath(train_json), "image_folder": os.path.abspath(raw),
        "records": len(built.records),
        "tasks": dict(Counter(r["task"] for r in built.records)),
        "sources": dict(Counter(r["source"] for r in built.records)),
        "absent_images": dict(built.absent), "absent_examples": built.absent_examples,
        "options": options, "details": built.details,
        "preflight": {"checked": checked, "tokenizer": getattr(tokenizer, "name_or_path", None)}
        if run_check else "skipped (--no-preflight)",
        "inputs": [file_facts(p) for p in built.inputs],
    }
    _write_json(manifest_path, manifest, indent=1)
    log(report(manifest))
    return manifest


def report(manifest: dict) -> str:
    lines = [f"{manifest['recipe']}: {manifest['records']:,} records -> {manifest['train']} "
             f"(images under {manifest['image_folder']})",
             "  tasks: " + ", ".join(f"{k} {v:,}" for k, v in manifest["tasks"].items()),
             "  sources: " + ", ".join(f"{k} {v:,}" for k, v in manifest["sources"].items())]
    if manifest["absent_images"]:
        lines.append("  left out, image not on disk: " + ", ".join(
            f"{k} {v:,} (e.g. {manifest['absent_examples'][k][0]})" for k, v in manifest["absent_images"].items()))
    for key, value in manifest["details"].items():
        lines.append(f"  {key}: {value}")
    check = manifest["preflight"]
    lines.append(f"  pre-flight: {check}" if isinstance(check, str) else
                 f"  pre-flight: {check['checked']:,} samples passed (structure, images"
                 + (f", tokenization with {check['tokenizer']})" if check["tokenizer"] else
                    "; tokenization is checked when training starts, with the model's tokenizer)"))
    return "\n".join(lines)
