"""Every checkpoint, intermediate ones included, is complete: it alone rebuilds the model, and resuming runs on."""

import json
import shutil

import pytest
import torch

from llava.adapters import adapter_batch
from llava.model.checkpoint import load_checkpoint_model
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
        if getattr(model, "adapter_config", None) is None:
            return model(input_ids=ids, pixel_values=px).logits
        with adapter_batch(model, task_ids=task_ids, token_mask=torch.ones_like(ids)):
            return model(input_ids=ids, pixel_values=px).logits


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_intermediate_checkpoint_alone_reproduces_logits_and_resumes(tmp_path, small_data, scheme):
    trainer = run_training(small_data, tmp_path / "run", scheme, max_steps=2)
    ckpt = tmp_path / "copied-checkpoint"
    shutil.copytree(tmp_path / "run" / "checkpoint-2", ckpt)  # no final save next to it
    files = {p.name for p in ckpt.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "config.json", "llava_base.json",
            "preprocessor_config.json", "tokenizer.json"} <= files
    task_ids = torch.tensor([0, 2]) if scheme == "asymlora_tasks" else None
    expected = logits(trainer.model, None, task_ids)
    reloaded, tokenizer, _ = load_checkpoint_model(str(ckpt))
    base, _, _ = load_checkpoint_model(str(ckpt), load_weights=False)
    assert not torch.allclose(logits(base, None), expected[:, :, :])  # training changed something
    torch.testing.assert_close(logits(reloaded, tokenizer, task_ids), expected, atol=0, rtol=0)  # bit-identical
    # Heads, routers and projector are restored exactly.
    trained = dict(trainer.model.named_parameters())
    for name, p in reloaded.named_parameters():
        if "lora_" in name or "router" in name or "multi_modal_projector" in name:
            assert torch.equal(p, trained[name]), name

    resumed = run_training(small_data, tmp_path / "run", scheme, max_steps=4,
                           extra=["--resume_from_checkpoint", str(tmp_path / "run" / "checkpoint-2")])
    assert resumed.state.global_step == 4
    history = json.loads((tmp_path / "run" / "checkpoint-4" / "trainer_state.json").read_text())["log_history"]
    assert [h["step"] for h in history if "loss" in h] == [1, 2, 3, 4]
