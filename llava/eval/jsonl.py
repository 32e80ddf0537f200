"""JSON Lines files: questions and answers. Reading names the file and line of any malformed row."""

from __future__ import annotations

import json
import os


def read_jsonl(path: str, required: tuple[str, ...] = ()) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: malformed JSON at line {lineno}: {e.msg}") from e
            missing = [k for k in required if k not in row]
            if missing:
                raise ValueError(f"{path}: line {lineno} lacks {missing}")
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
