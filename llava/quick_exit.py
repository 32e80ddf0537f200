"""A process that imported torch and transformers ends without a garbage collection of their whole module graph.

At interpreter shutdown CPython runs full collections while it tears modules down; with torch, transformers, PEFT
and bitsandbytes (which imports torch's compiler) loaded, that pass walks millions of objects and adds seconds to
the exit of every run, eval and launcher child (bench/process_exit.py measures it). `gc.freeze()` as the last exit
hook moves every live object out of the collector's sight: refcounting still frees them, files opened by the run
are closed by their owners before exit, and hooks registered after this one (the Trainer's, tensorboard's) have
already run.
"""

from __future__ import annotations

import atexit
import gc


def install() -> None:
    atexit.register(gc.freeze)
