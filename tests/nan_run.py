"""`python tests/nan_run.py K OUTPUT DATA_SPEC IMAGE_FOLDER`: a tiny run that turns one projector weight into NaN
after optimizer step K-1, so step K's loss is NaN (the fault injected by tests/test_run_safety.py)."""

import sys

import torch
from transformers import TrainerCallback

from llava.train.train import train


class InjectNaN(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step - 1:
            with torch.no_grad():
                model.model.multi_modal_projector.linear_1.weight[0, 0] = float("nan")


if __name__ == "__main__":
    k, out, spec, folder = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    train(["--model_name_or_path", "tiny", "--data_path", spec, "--image_folder", folder, "--output_dir", out,
           "--lora_enable", "True", "--lora_r", "4", "--lora_alpha", "8", "--per_device_train_batch_size", "4",
           "--learning_rate", "1e-3", "--max_steps", "8", "--save_steps", "2", "--logging_steps", "1",
           "--report_to", "none", "--use_cpu", "True", "--disable_tqdm", "True", "--model_max_length", "256"],
          callbacks=[InjectNaN(k)])
