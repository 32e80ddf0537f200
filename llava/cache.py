"""Where derived files go (pre-flight results, converted GGUF models): one user cache dir, overridable.

LLAVA_ASYMLORA_CACHE wins; otherwise $XDG_CACHE_HOME/llava-asymlora, ~/.cache/llava-asymlora without it. Every entry is keyed by what it was derived from, so a
changed input never reads a stale entry.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable


def cache_dir(kind: str) -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    root = os.environ.get("LLAVA_ASYMLORA_CACHE") or os.path.join(base, "llava-asymlora")
    return os.path.join(root, kind)


def publish_dir(target: str, write: Callable[[str], None], done: str) -> str:
    """Fill a cache entry: `write(tmp_dir)` into a temp dir beside `target`, mark it with the file `done`, rename it
    into place. Concurrent processes (ranks, workers) never read a half-written entry; if another one finished
    first, its copy is used."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=os.path.dirname(target))
    try:
        write(tmp)
        open(os.path.join(tmp, done), "w").close()
        os.rename(tmp, target)
    except OSError:
        if not os.path.exists(os.path.join(target, done)):
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
