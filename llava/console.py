"""What a run prints: progress bars on a terminal only. Redirected to a file (a job log, `make demo > log`), a bar
is a flood of carriage returns; there the Trainer prints one line per logged step instead."""

from __future__ import annotations

import contextlib
import io
import os
import sys


def on_a_terminal() -> bool:
    return sys.stderr.isatty()


def progress_bars_only_on_a_terminal() -> None:
    """transformers' and datasets' bars (loading and writing weights, Arrow maps) off when stderr is not a TTY."""
    if on_a_terminal():
        return
    import transformers

    transformers.utils.logging.disable_progress_bar()
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
    else:  # read when datasets is imported (only training needs it); a value the user set is kept
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


@contextlib.contextmanager
def library_bar_as_nothing(desc: str):
    """A library's own tqdm bar that no switch turns off (transformers' GGUF de-quantizing bar is plain tqdm): off a
    terminal, stderr is held for the block and given back without the bar's lines (anything else is kept)."""
    if on_a_terminal():
        yield
        return
    held = io.StringIO()
    try:
        with contextlib.redirect_stderr(held):
            yield
    finally:
        kept = [line for line in held.getvalue().splitlines() if line.strip() and not line.startswith(desc)]
        if kept:
            print("\n".join(kept), file=sys.stderr)
