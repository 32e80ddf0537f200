"""Tiny training runs through the user's entry point, and fixed probes of a model's logits."""

import torch

from llava.adapters import adapter_batch
from llava.adapters.attached import adapter_config
from llava.train.train import train

SCHEMES = {
    "lora": ["--adapter_scheme", "lora"],
    "asymlora": ["--adapter_scheme", "asymlora", "--num_experts", "3", "--router_scope", "mlp_block",
                 "--mixture_targets", "gate_proj,up_proj,down_proj", "--balance_coef", "0.05"],
    "asymlora_tasks": ["--adapter_scheme", "asymlora", "--num_tasks", "-1"],
    "moe_lora": ["--adapter_scheme", "moe_lora", "--num_experts", "3", "--router", "topk", "--top_k", "2",
                 "--balance_coef", "0.05"],
    "mixlora": ["--adapter_scheme", "mixlora", "--num_experts", "8", "--lora_r", "2"],
}


def run_training(data, out, scheme="lora", max_steps=2, extra=()):
    spec, folder = data
    args = ["--model_name_or_path", "tiny", "--data_path", spec, "--image_folder", folder, "--output_dir", str(out),
            "--lora_enable", "True", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0.0",
            "--per_device_train_batch_size", "4", "--learning_rate", "1e-2", "--mm_projector_lr", "1e-2",
            "--max_steps", str(max_steps), "--save_steps", "2", "--logging_steps", "1", "--report_to", "none",
            "--model_max_length", "256", "--disable_tqdm", "True", "--seed", "0", "--use_cpu", "True",
            *SCHEMES[scheme], *extra]
    return train(args)


def logits(model, tokenizer, task_ids=None):
    model.eval()
    n = model.config.image_seq_length
    ids = torch.tensor([[1] + [model.config.image_token_index] * n + [60, 70, 80]] * 2)
    torch.manual_seed(0)
    px = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        if adapter_config(model) is None:
            return model(input_ids=ids, pixel_values=px).logits
        with adapter_batch(model, task_ids=task_ids, token_mask=torch.ones_like(ids)):
            return model(input_ids=ids, pixel_values=px).logits


def tiny_inputs(model, batch=2):
    n = model.config.image_seq_length
    ids = torch.tensor([[1] + [model.config.image_token_index] * n + [60, 70, 80, 90]] * batch)
    torch.manual_seed(0)
    return dict(input_ids=ids, pixel_values=torch.randn(batch, 3, 32, 32), labels=ids.clone())
