"""Read LLaVA conversation files (JSON list or JSONL) and task mixtures, validating structure up front.

Structural problems (malformed JSON, unknown role, turns that do not alternate, an empty reply, <image> without an
image) are found when the files are read, so a bad sample in a 665k-sample mixture fails in seconds rather than
hours into training. Each error names the file and the sample id (or line).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field

from llava.constants import DEFAULT_IMAGE_TOKEN

logger = logging.getLogger(__name__)

HUMAN_ROLES = {"human", "user"}
ASSISTANT_ROLES = {"gpt", "assistant"}


class DataError(ValueError):
    """A problem with one sample or one file; the message is "<where>: <reason>", where names file and sample."""

    def __init__(self, where: str, reason: str | None = None):
        self.where, self.reason = (where, reason) if reason is not None else ("", where)
        super().__init__(f"{where}: {reason}" if reason is not None else where)


@dataclass
class Record:
    """One conversation as read from disk, with where it came from."""

    file: str
    sample_id: str
    turns: list[tuple[int, str]]  # (0 = human, 1 = assistant, text)
    images: list[str]  # paths relative to the image folder, in the order of their <image> tags
    task_id: int

    @property
    def image(self) -> str | None:
        """The first image (LLaVA-1.5's samples have one at most; its paths refuse several: one_image)."""
        return self.images[0] if self.images else None

    def one_image(self, where: str) -> str | None:
        """The sample's image for LLaVA-1.5, which takes one per sample."""
        if len(self.images) > 1:
            raise DataError(where, f"{len(self.images)} images: LLaVA-1.5 takes one per sample (another family's "
                                   "processor takes several: docs/models.md)")
        return self.image


@dataclass
class SkipReport:
    """Counts of samples skipped (only with --skip_bad_samples) and truncated, by reason."""

    counts: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (where, reason), in reading order
    quiet: bool = False  # collect without logging (the Arrow cache logs when it replays them)
    raised: list[tuple[str, str]] = field(default_factory=list)  # the error as it is raised without skipping

    def add(self, reason: str, where: str, error: DataError | None = None) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        self.skipped.append((where, reason))
        self.raised.append((error.where, error.reason) if error is not None else (where, reason))
        if not self.quiet:
            logger.warning("skipping %s: %s", where, reason)

    def total(self) -> int:
        return sum(self.counts.values())


def parse_data_path(spec: str) -> list[tuple[str | None, str]]:
    """`a.json` -> [(None, a.json)]; `vqa=a.json,gen=b.json` -> [("vqa", a.json), ("gen", b.json)]."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise DataError("--data_path is empty")
    out = []
    for part in parts:
        if "=" in part:
            name, path = part.split("=", 1)
            if not name:
                raise DataError(f"--data_path entry {part!r} has an empty task name")
            out.append((name, path))
        else:
            out.append((None, part))
    return out


def _read_raw(path: str):
    """(location, sample or DataError) pairs; location is `line N` for JSONL, `index N` for a JSON list. A JSONL line
    that is not UTF-8 or not JSON is an error of that sample (skippable); a broken JSON list fails the file."""
    if not os.path.exists(path):
        raise DataError(f"data file {path} does not exist")
    with open(path, "rb") as f:
        data = f.read()
    stripped = data.lstrip()
    if path.endswith(".jsonl") or (stripped and not stripped.startswith(b"[")):
        rows = []
        for lineno, raw_line in enumerate(data.split(b"\n"), start=1):
            if not raw_line.strip():
                continue
            try:
                rows.append((f"line {lineno}", json.loads(raw_line.decode("utf-8"))))
            except UnicodeDecodeError as e:
                rows.append((f"line {lineno}", DataError(path, f"line {lineno} is not UTF-8 (byte {e.start})")))
            except json.JSONDecodeError as e:
                rows.append((f"line {lineno}", DataError(path, f"malformed JSON at line {lineno}: {e.msg}")))
        return rows
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 at byte {e.start}") from e
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
    if not isinstance(parsed, list):
        raise DataError(f"{path}: expected a JSON list of samples, got {type(parsed).__name__}")
    return [(f"index {i}", row) for i, row in enumerate(parsed)]


def _parse_turns(raw: dict, where: str) -> list[tuple[int, str]]:
    convs = raw.get("conversations")
    if not isinstance(convs, list) or not convs:
        raise DataError(where, "missing or empty 'conversations'")
    turns = []
    for i, turn in enumerate(convs):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            raise DataError(where, f"turn {i} must be an object with 'from' and 'value'")
        role_name = str(turn["from"]).lower()
        if role_name in HUMAN_ROLES:
            role = 0
        elif role_name in ASSISTANT_ROLES:
            role = 1
        else:
            raise DataError(where, f"turn {i} has unknown role {turn['from']!r} (expected human/gpt)")
        if role != i % 2:
            expected = "human" if i % 2 == 0 else "gpt"
            raise DataError(where, f"turns do not alternate: turn {i} is {turn['from']!r}, expected {expected!r}")
        value = turn["value"]
        if not isinstance(value, str):
            raise DataError(where, f"turn {i} value is not a string")
        if role == 1 and not value.strip():
            raise DataError(where, f"turn {i} is an empty reply")
        turns.append((role, value))
    if turns[-1][0] != 1:
        raise DataError(where, "conversation ends with a human turn and has no reply to learn")
    return turns


def _images(image, tags: int, where: str) -> list[str]:
    """The sample's image paths: LLaVA's one path (its <image> tag optional: it goes in front), or a list of paths,
    one <image> tag for each, where it goes (LLaVA-NeXT-Interleave's and OneVision's records)."""
    if image is None:
        if tags:
            raise DataError(where, f"text contains {DEFAULT_IMAGE_TOKEN} but the sample has no 'image'")
        return []
    paths = [image] if isinstance(image, str) else image
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise DataError(where, "'image' must be a path or a non-empty list of paths")
    if len(paths) == 1 and tags > 1:
        raise DataError(where, f"more than one {DEFAULT_IMAGE_TOKEN} for one image ({tags} tags)")
    if len(paths) > 1 and tags != len(paths):
        raise DataError(where, f"{len(paths)} images need {len(paths)} {DEFAULT_IMAGE_TOKEN} tags, one where each "
                               f"goes; the text has {tags}")
    return paths


def read_records(spec: str, skip_bad: bool = False, report: SkipReport | None = None):
    """Read every file of a `--data_path` spec. Returns (records, task_names)."""
    report = report if report is not None else SkipReport()
    entries = parse_data_path(spec)
    task_names: list[str] = []

    def task_index(name: str) -> int:
        if name not in task_names:
            task_names.append(name)
        return task_names.index(name)

    records: list[Record] = []
    for mixture_task, path in entries:
        for location, raw in _read_raw(path):
            sample_id = str(raw.get("id", location)) if isinstance(raw, dict) else location
            where = f"{path}: sample {sample_id} ({location})"
            try:
                if isinstance(raw, DataError):
                    raise raw
                if not isinstance(raw, dict):
                    raise DataError(where, "sample is not a JSON object")
                turns = _parse_turns(raw, where)
                images = _images(raw.get("image"), sum(v.count(DEFAULT_IMAGE_TOKEN) for _, v in turns), where)
            except DataError as e:
                if not skip_bad:
                    raise
                report.add(e.reason, where, e)
                continue
            task = mixture_task or raw.get("task") or "default"
            records.append(Record(path, sample_id, turns, images, task_index(str(task))))
    return records, task_names
