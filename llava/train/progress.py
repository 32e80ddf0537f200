"""Console output of a run: one progress bar (total and ETA) and log lines whose values are numbers.

transformers' ProgressCallback / PrinterCallback format every float as a string ('loss': '3.984'), which no one
can paste into a plot or compare; the lines here keep numbers (rounded to 4 significant digits) and leave out the
router-load entries that go to wandb/tensorboard.
"""

from __future__ import annotations

from transformers.trainer_callback import PrinterCallback, ProgressCallback

HIDDEN = ("router_load/", "router_health/", "total_flos")


def console_logs(logs: dict) -> dict:
    out = {}
    for key, value in logs.items():
        if key.startswith(HIDDEN):
            continue
        out[key] = float(f"{value:.4g}") if isinstance(value, float) else value
    return out


class NumericProgressCallback(ProgressCallback):
    def on_log(self, args, state, control, logs=None, **kwargs):
        shown = console_logs(logs or {})
        if state.is_world_process_zero and self.training_bar is not None and shown:
            self.training_bar.write(str(shown))


class NumericPrinterCallback(PrinterCallback):
    def on_log(self, args, state, control, logs=None, **kwargs):
        shown = console_logs(logs or {})
        if state.is_local_process_zero and shown:
            print(shown)


def use_numeric_console(trainer) -> None:
    """Swap the Trainer's console callback for the numeric one (whichever --disable_tqdm chose)."""
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(NumericProgressCallback)
    elif trainer.pop_callback(PrinterCallback) is not None:
        trainer.add_callback(NumericPrinterCallback)
