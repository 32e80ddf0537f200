"""Pre-flight: every sample is checked before step 1, so a bad one in a 665k mixture stops the run in minutes,
not hours into training.

Per record: the image exists, its header and structure read (`PIL.Image.verify`, no full decode), its size is
sane; the conversation tokenizes under the run's template and keeps a supervised token after truncation (skipped
for a dataset built without a tokenizer: the data recipes check structure and images before any model is chosen).
Records are checked in worker processes with a progress bar; the result is cached per data file (keyed by the
files' size and mtime and by the settings that change the answer), so a re-run costs a stat per file.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import warnings
from collections import Counter
from dataclasses import dataclass

from PIL import Image
from tqdm import tqdm

from llava.cache import cache_dir
from llava.data.preprocess import move_image_to_front, place_images, tokenize_conversation
from llava.data.processor_batch import Conversation, reply_spans, to_messages
from llava.data.sources import DataError, parse_data_path

MAX_IMAGE_SIDE = 100_000  # larger images are refused as corrupt headers
MAX_ASPECT = 200


@dataclass
class BadSample:
    index: int
    file: str
    sample_id: str
    reason: str

    def to_json(self) -> dict:
        return {"file": self.file, "id": self.sample_id, "index": self.index, "reason": self.reason}


def check_image(path: str) -> str | None:
    """Why the image at `path` cannot be used, or None."""
    if not os.path.exists(path):
        return f"image file {path} not found"
    if os.path.getsize(path) == 0:
        return f"image file {path} is empty (0 bytes)"
    try:
        with warnings.catch_warnings():  # PIL warns between 1x and 2x its pixel limit; the size check below decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
                im.verify()
    except Exception as e:  # PIL's parsers raise many kinds on a corrupt header (struct.error, bombs, ...)
        return f"image file {path} is corrupt or unreadable: {type(e).__name__}: {e}"
    if not (0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE):
        return f"image file {path} has an implausible size {width}x{height}"
    if max(width, height) / min(width, height) > MAX_ASPECT:
        return f"image file {path} is {width}x{height}: aspect ratio over {MAX_ASPECT}"
    return None


_WORKER = {}


def _init(dataset) -> None:
    _WORKER["dataset"] = dataset
    _WORKER["images"] = {}


def _check(index: int) -> tuple[int, str] | None:
    ds = _WORKER["dataset"]
    record = ds.records[index]
    where = f"{record.file}: sample {record.sample_id}"
    for path in (os.path.join(ds.image_folder, p) for p in record.images):
        if path not in _WORKER["images"]:  # LLaVA mixtures reuse images across conversations
            _WORKER["images"][path] = check_image(path)
        if _WORKER["images"][path]:
            return index, _WORKER["images"][path]
    if ds.tokenizer is None:  # structure and images only (a data recipe without the model's tokenizer)
        return None
    try:
        if ds.processor is not None:  # another family: its chat template renders the replies (the processor tokenizes
            # a batch at a time, where truncation is checked)
            turns = place_images(record.turns, len(record.images))
            reply_spans(ds.processor, to_messages(Conversation(turns, [None] * len(record.images), where)), where)
            return None
        turns = move_image_to_front(record.turns, record.one_image(where) is not None)
        tokenize_conversation(turns, ds.template, ds.tokenizer, ds.image_seq_length, ds.model_max_length, where)
    except DataError as e:
        return index, e.reason
    return None


def _cache_key(dataset) -> str:
    stats = [(p, os.path.getsize(p), os.path.getmtime(p)) for _, p in parse_data_path(dataset.data_path)]
    tok = dataset.tokenizer
    tokenizer = None if tok is None else [tok.name_or_path, len(tok), tok.eos_token]
    settings = [stats, os.path.abspath(dataset.image_folder or "."), dataset.template.name, dataset.image_seq_length,
                dataset.model_max_length, tokenizer, 1,
                getattr(dataset.processor, "chat_template", None) if dataset.processor is not None else None]
    return hashlib.sha256(json.dumps(settings, default=str).encode()).hexdigest()[:24]


def preflight(dataset, workers: int = 0, show_progress: bool = True, use_cache: bool = True) -> list[BadSample]:
    """The bad samples of `dataset` (a SupervisedDataset), checked in `workers` processes (0: in this one)."""
    path = os.path.join(cache_dir("preflight"), _cache_key(dataset) + ".json")
    if use_cache and os.path.exists(path):
        with open(path) as f:
            found = json.load(f)
    else:
        indices = range(len(dataset.records))
        bar = dict(total=len(indices), desc="pre-flight check", unit="sample", mininterval=1.0,
                   disable=None if show_progress else True)  # None: shown on a terminal only
        if workers > 0:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(workers, initializer=_init, initargs=(dataset,)) as pool:
                results = list(tqdm(pool.imap(_check, indices, chunksize=512), **bar))
        else:
            _init(dataset)
            results = [_check(i) for i in tqdm(indices, **bar)]
        found = [list(r) for r in results if r is not None]
        if use_cache:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                json.dump(found, f)
            os.replace(tmp, path)
    return [BadSample(i, dataset.records[i].file, dataset.records[i].sample_id, reason) for i, reason in found]


def summary(problems: list[tuple[str, str]], total: int, limit: int = 20) -> str:
    """The first `limit` problems (where: file and sample, reason) and the count of each kind."""
    kinds = Counter(_kind(reason) for _, reason in problems)
    lines = [f"{len(problems)} of {total} samples cannot be used (the run stops before step 1; --skip_bad_samples "
             "skips exactly these and lists them in OUTPUT/skipped_samples.jsonl):"]
    lines += [f"  {where}: {reason}" for where, reason in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    lines.append("by reason: " + ", ".join(f"{k}: {n}" for k, n in kinds.most_common()))
    return "\n".join(lines)


def _kind(reason: str) -> str:
    for key in ("not found", "empty (0 bytes)", "corrupt", "implausible size", "aspect ratio", "no supervised token",
                "template/tokenizer mismatch", "cuts through the image", "not UTF-8", "malformed JSON",
                "more than one <image>"):
        if key in reason:
            return key
    return reason.split(":")[0][:60]
