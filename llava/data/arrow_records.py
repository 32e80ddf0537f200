"""The validated records of a `--data_path` mixture as a memory-mapped Arrow table, built once and cached.

Reading LLaVA's 665k-sample JSON into Python objects costs every rank and every dataloader worker gigabytes and a
minute or more. Here the one reading pass (`sources.read_records`: parse, structural validation, errors named by
file and sample) writes its result with `datasets`' ArrowWriter into the user cache, keyed by the files' paths,
sizes and mtimes; every later process memory-maps that file (`datasets.Dataset.from_file`), so the records live once
in the page cache instead of once per process. The read-time errors are cached beside it, so a re-run reports (and,
with --skip_bad_samples, skips) exactly what the first run did.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile

import numpy as np
import pyarrow.compute as pc
from datasets import Dataset, Features, Sequence, Value
from datasets.arrow_writer import ArrowWriter

from llava.cache import cache_dir
from llava.data.sources import DataError, Record, SkipReport, parse_data_path, read_records

FEATURES = Features({
    "file": Value("int32"), "sample_id": Value("string"), "roles": Sequence(Value("int8")),
    "texts": Sequence(Value("string")), "images": Sequence(Value("string")), "task_id": Value("int32"),
    "words": Value("int32"),  # whitespace words over all turns: LLaVA's length for batching by modality
})
FORMAT = 2  # bump when the columns change


class RecordTable:
    """A sequence of Records backed by the Arrow table; `rows` selects (after pre-flight drops) without copying."""

    COLUMNS = ("file", "sample_id", "roles", "texts", "images", "task_id")

    def __init__(self, table: Dataset, files: list[str], rows: np.ndarray | None = None):
        self.table = table
        self.files = files
        self.rows = np.arange(len(table), dtype=np.int64) if rows is None else rows
        # pyarrow columns of the mapped file: a scalar per field is ~6x cheaper than Dataset.__getitem__'s formatting
        self._columns = [table.data.column(name) for name in self.COLUMNS]

    def __getstate__(self):  # spawned workers re-map the file (datasets pickles a mapped table by path)
        return {"table": self.table, "files": self.files, "rows": self.rows}

    def __setstate__(self, state):
        self.__init__(state["table"], state["files"], state["rows"])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Record:
        i = int(self.rows[index])
        file, sample_id, roles, texts, images, task_id = (c[i].as_py() for c in self._columns)
        return Record(self.files[file], sample_id, list(zip(roles, texts)), images, task_id)

    def without(self, indices) -> RecordTable:
        return RecordTable(self.table, self.files, np.delete(self.rows, np.fromiter(indices, dtype=np.int64)))

    def modality_lengths(self, image_seq_length: int) -> list[int]:
        """LLaVA's convention: words (+ image tokens) positive for image samples, negative for text-only ones."""
        words = self.table.data.column("words").to_numpy().astype(np.int64)[self.rows]
        images = pc.list_value_length(self.table.data.column("images")).fill_null(0).to_numpy().astype(np.int64)
        images = images[self.rows]
        return np.where(images > 0, words + images * image_seq_length, -words).tolist()


def _key(spec: str) -> str:
    stats = [(name, os.path.abspath(p), os.path.getsize(p), os.stat(p).st_mtime_ns) if os.path.exists(p)
             else (name, p, None, None) for name, p in parse_data_path(spec)]
    return hashlib.sha256(json.dumps([FORMAT, stats]).encode()).hexdigest()[:24]


def _write(records: list[Record], report: SkipReport, task_names: list[str], path: str) -> None:
    files = sorted({r.file for r in records})
    index = {f: i for i, f in enumerate(files)}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=os.path.dirname(path))
    with ArrowWriter(features=FEATURES, path=os.path.join(tmp, "records.arrow")) as writer:
        for start in range(0, len(records), 10_000):
            chunk = records[start:start + 10_000]
            writer.write_batch({
                "file": [index[r.file] for r in chunk], "sample_id": [r.sample_id for r in chunk],
                "roles": [[role for role, _ in r.turns] for r in chunk],
                "texts": [[text for _, text in r.turns] for r in chunk], "images": [r.images for r in chunk],
                "task_id": [r.task_id for r in chunk],
                "words": [sum(len(text.split()) for _, text in r.turns) for r in chunk]})
        writer.finalize()
    with open(os.path.join(tmp, "meta.json"), "w") as f:
        json.dump({"files": files, "task_names": task_names, "skipped": report.skipped, "raised": report.raised}, f)
    try:
        os.rename(tmp, path)
    except OSError:  # another rank wrote the same entry first: use theirs
        if not os.path.exists(os.path.join(path, "meta.json")):
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_records(spec: str, skip_bad: bool, report: SkipReport):
    """(RecordTable, task_names) for a `--data_path` spec; structural errors raise (skip_bad=False) or go to
    `report`, exactly as `read_records` does, whether the table was just built or came from the cache."""
    path = os.path.join(cache_dir("records"), _key(spec))
    if not os.path.exists(os.path.join(path, "meta.json")):
        collected = SkipReport(quiet=True)
        records, task_names = read_records(spec, skip_bad=True, report=collected)
        _write(records, collected, task_names, path)
        del records
    with open(os.path.join(path, "meta.json")) as f:
        meta = json.load(f)
    if meta["skipped"] and not skip_bad:
        where, reason = meta["raised"][0]  # what reading without skipping raises: the first problem
        raise DataError(where, reason) if where else DataError(reason)
    for where, reason in meta["skipped"]:
        report.add(reason, where)
    table = Dataset.from_file(os.path.join(path, "records.arrow"))  # memory-mapped, not read into this process
    return RecordTable(table, meta["files"]), meta["task_names"]
