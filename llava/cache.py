"""Where derived files go (pre-flight results, converted GGUF models): one user cache dir, overridable.

LLAVA_ASYMLORA_CACHE wins; otherwise ~/.cache/llava-asymlora. Every entry is keyed by what it was derived from, so a
changed input never reads a stale entry.
"""

from __future__ import annotations

import os


def cache_dir(kind: str) -> str:
    root = os.environ.get("LLAVA_ASYMLORA_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "llava-asymlora")
    return os.path.join(root, kind)
