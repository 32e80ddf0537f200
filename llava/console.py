"""What a run prints: progress bars on a terminal only. Redirected to a file (a job log, `make demo > log`), a bar
is a flood of carriage returns; there the Trainer prints one line per logged step instead."""

from __future__ import annotations

import sys


def on_a_terminal() -> bool:
    return sys.stderr.isatty()


def progress_bars_only_on_a_terminal() -> None:
    """transformers' and datasets' bars (loading and writing weights, Arrow maps) off when stderr is not a TTY."""
    if on_a_terminal():
        return
    import datasets
    import transformers

    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
