"""JSON Lines files: questions and answers. Reading names the file and line of any malformed row."""

from __future__ import annotations

import json
import os


def read_jsonl(path: str, required: tuple[str, ...] = (), types: dict[str, tuple] | None = None) -> list[dict]:
    """Rows of a JSON Lines file; `required` fields must be present, `types` fields (where present) of those types.
    Any other row is a ValueError naming the file and line."""
    rows = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}: line {lineno} is not UTF-8 (byte {e.start})") from e
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: malformed JSON at line {lineno}: {e.msg}") from e
            except RecursionError as e:
                raise ValueError(f"{path}: line {lineno} is nested too deeply") from e
            if not isinstance(row, dict):
                raise ValueError(f"{path}: line {lineno} is a JSON {type(row).__name__}, not an object")
            missing = [k for k in required if k not in row]
            if missing:
                raise ValueError(f"{path}: line {lineno} lacks {missing}")
            for key, kinds in (types or {}).items():
                if key in row and (not isinstance(row[key], kinds) or isinstance(row[key], bool)):
                    raise ValueError(f"{path}: line {lineno}: {key} must be {' or '.join(k.__name__ for k in kinds)}, "
                                     f"got {type(row[key]).__name__}")
            rows.append(row)
    return rows


def write_jsonl(rows, path: str) -> None:
    """Write all rows to a temporary file, then rename: a reader never sees a half-written file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    os.replace(tmp, path)
