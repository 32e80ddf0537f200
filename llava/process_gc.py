"""How a process of this package uses Python's garbage collector: less of it while a command starts, none at exit.

Importing torch, transformers, PEFT and bitsandbytes (which imports torch's compiler) creates millions of objects,
and CPython's default young-generation threshold (700 allocations) runs a collection every few hundred of them, a
sizeable part of a command's start-up (bench/process_gc.py measures it and the exit). A `python -m llava...` command
(the scripts, torchrun's and DeepSpeed's workers) starts with a threshold of 10,000 instead; code that imports the
package into its own process keeps its settings (unless it asks for them: `imports_done(command=True)`).

Once its imports are done a command also freezes what they created (`imports_done()`), so the collections of the run
itself skip those objects.

At interpreter shutdown CPython runs full collections while it tears modules down, seconds with that stack loaded.
`gc.freeze()` as the last exit hook moves every live object out of the collector's sight: refcounting still frees
them, files the run opened are closed by their owners before exit, and hooks registered after this one (the
Trainer's, tensorboard's) have already run.
"""

from __future__ import annotations

import atexit
import gc
import sys

START_UP_THRESHOLD = 10_000
_command = False  # this process is one of the package's commands (or asked to be run like one)


def install() -> None:
    # While `python -m` locates the module to run, sys.argv[0] is "-m" (the interpreter's documented behaviour):
    # this import is the start of one of our commands, not a library user's.
    if sys.argv[:1] == ["-m"]:
        as_a_command()
    atexit.register(gc.freeze)


def as_a_command() -> None:
    global _command
    _command = True
    command_threshold()


def command_threshold() -> None:
    """The young-generation threshold of the package's commands (also for the test processes, which train and
    evaluate in-process but are not commands: nothing of theirs is ever frozen)."""
    gc.set_threshold(START_UP_THRESHOLD, *gc.get_threshold()[1:])


def imports_done(command: bool = False) -> None:
    """A command's imports are done: what exists now (modules, classes, functions) lives until exit, so later
    collections stop walking it (`gc.freeze()`). Nothing in a library user's process. command=True: this program
    runs the package's training or evaluation in-process as its main job, and is run like a command (the test
    suite's launched helpers)."""
    if command:
        as_a_command()
    if _command:
        gc.freeze()


if __name__ == "__main__":  # python -m llava.process_gc: the thresholds a command of this package runs with
    print(*gc.get_threshold())
