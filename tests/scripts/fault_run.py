"""Tiny training runs with a fault injected, for tests/test_run_safety.py:

  python tests/scripts/fault_run.py nan K OUTPUT DATA_SPEC IMAGE_FOLDER [extra args]   one projector weight turns NaN after
                                                                                 optimizer step K-1
  python tests/scripts/fault_run.py plain 0 OUTPUT DATA_SPEC IMAGE_FOLDER [extra args]  no fault
  python tests/scripts/fault_run.py infgrad K ...                                      the projector's gradient is inf
                                                                                 from step K on
  python tests/scripts/fault_run.py kill K OUTPUT DATA_SPEC IMAGE_FOLDER [extra args]  SIGKILL in the middle of saving
                                                                                 checkpoint-K (weights and optimizer
                                                                                 written, RNG and trainer state not)
  torchrun ... tests/scripts/fault_run.py oom K OUTPUT DATA_SPEC IMAGE_FOLDER [extra]  rank 1 raises CUDA's out-of-memory
                                                                                 error at step K, through llava-train's
                                                                                 own entry point (main)
"""

import functools
import os
import signal
import sys

import torch
from transformers import Trainer, TrainerCallback

from llava import process_gc
from llava.train.train import train


class InjectNaN(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step - 1:
            with torch.no_grad():
                model.model.multi_modal_projector.linear_1.weight[0, 0] = float("nan")


class InjectInfGrad(TrainerCallback):
    """From step K on, the projector's gradient is multiplied by inf (the loss stays finite)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step - 1:
            model.model.multi_modal_projector.linear_1.weight.register_hook(lambda g: g * float("inf"))


class InjectOOM(TrainerCallback):
    """Rank 1 raises the error an out-of-memory GPU raises, at the start of step K."""

    def __init__(self, step: int):
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step - 1 and os.environ.get("RANK") == "1":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (injected on rank 1)")


def kill_while_saving(step: int):
    original = Trainer._save_rng_state

    def save_rng_state(self, output_dir):  # test-only fault: the process dies part-way through the save
        if self.state.global_step == step:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, output_dir)
    Trainer._save_rng_state = save_rng_state


if __name__ == "__main__":
    process_gc.imports_done(command=True)  # as `python -m llava.train.train` runs (this runs it in-process)
    mode, k, out, spec, folder, *extra = sys.argv[1:]
    callbacks = {"nan": [InjectNaN(int(k))], "infgrad": [InjectInfGrad(int(k))], "oom": [InjectOOM(int(k))]}.get(mode)
    if mode == "kill":
        kill_while_saving(int(k))
    args = ["--model_name_or_path", "tiny", "--data_path", spec, "--image_folder", folder, "--output_dir", out,
           "--lora_enable", "True", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0.0",
           "--per_device_train_batch_size", "4", "--learning_rate", "1e-3", "--max_steps", "6", "--save_steps", "2",
           "--logging_steps", "1", "--report_to", "none", "--use_cpu", "True", "--disable_tqdm", "True",
           "--model_max_length", "256", "--seed", "0", *extra]
    if mode == "oom":  # the entry point a launcher runs, with the fault's callback in its training call
        import llava.train.train as entry

        entry.train = functools.partial(train, callbacks=callbacks)
        sys.argv = ["llava-train", *args]
        entry.main()
    else:
        train(args, callbacks=callbacks)
