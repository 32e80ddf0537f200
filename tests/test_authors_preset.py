"""`PRESET=authors bash scripts/finetune_asymlora.sh` is the AsymLoRA authors' MLLM-HydraLoRA recipe: every setting of
their released script (HydraLoRA repository, MLLM-HydraLoRA/MLLM_HydraLoRA.sh, written out below in their flag names
and mapped to ours) comes out of the script's command line, parsed by the training entry point's own parser; with
MODEL=tiny only the model and data change, and it trains."""

import json
import os
import shlex
import subprocess
import sys

import pytest
import transformers

from llava.checkpoint import load_checkpoint_model
from llava.inference import Generator
from llava.train.args import DataArguments, ModelArguments, TrainingArguments

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# MLLM_HydraLoRA.sh, flag by flag: their name and value -> (our argument, the value it must have).
AUTHORS = [
    ("--use_lora True", "lora_enable", True),
    ("--lora_rank 32", "lora_r", 32),
    ("--lora_alpha 64", "lora_alpha", 64),
    ("(train.py default) lora_dropout 0.05", "lora_dropout", 0.05),
    ("--mm_projector_lr 2e-5", "mm_projector_lr", 2e-5),
    ("--llm_moe True (shared A, routed B heads on the MLP)", "adapter_scheme", "asymlora"),
    ("--llm_moe True: the mixture on every MLP projection", "mixture_targets", "gate_proj,up_proj,down_proj"),
    ("--dense_moe True", "router", "dense"),
    ("moe.py: one router per MLP block, nn.Linear with bias", "router_scope", "mlp_block"),
    ("moe.py: router nn.Linear with bias", "router_bias", True),
    ("--lora_modules q_proj,k_proj,v_proj,o_proj (plain LoRA)", "lora_targets",
     "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"),
    ("--llm_moe_num_experts 3", "num_experts", 3),
    ("(one task: the router picks the heads)", "num_tasks", 1),
    ("--moe_balance_w 0.05", "balance_coef", 0.05),
    ("moe.py's balance loss", "balance_loss", "hydra"),
    ("--model_name_or_path ./checkpoints/llava-v1.5-7b", "model_name_or_path", "./checkpoints/llava-v1.5-7b"),
    ("--version v1", "version", "v1"),
    ("--vision_tower ./checkpoints/clip-vit-large-patch14-336", "vision_tower", "./checkpoints/clip-vit-large-patch14-336"),
    ("--pretrain_mm_mlp_adapter llava-v1.5-7b/mm_projector.bin: the projector of the checkpoint itself",
     "pretrain_mm_mlp_adapter", None),
    ("--mm_projector_type mlp2x_gelu", "mm_projector_type", "mlp2x_gelu"),
    ("--mm_vision_select_layer -2", "mm_vision_select_layer", -2),
    ("--mm_use_im_start_end False", "mm_use_im_start_end", False),
    ("--mm_use_im_patch_token False", "mm_use_im_patch_token", False),
    ("--image_aspect_ratio resize", "image_aspect_ratio", "resize"),
    ("--group_by_modality_length True", "group_by_modality_length", True),
    ("--bf16 True", "bf16", True),
    ("--num_train_epochs 1", "num_train_epochs", 1),
    ("--per_device_train_batch_size 1", "per_device_train_batch_size", 1),
    ("--gradient_accumulation_steps 2", "gradient_accumulation_steps", 2),
    ("--save_strategy steps", "save_strategy", "steps"),
    ("--save_steps 1000", "save_steps", 1000),
    ("--save_total_limit 1", "save_total_limit", 1),
    ("--learning_rate 2e-4", "learning_rate", 2e-4),
    ("--weight_decay 0.", "weight_decay", 0.0),
    ("--warmup_ratio 0.03", "warmup_ratio", 0.03),
    ("--lr_scheduler_type cosine", "lr_scheduler_type", "cosine"),
    ("--logging_steps 1", "logging_steps", 1),
    ("--model_max_length 2048", "model_max_length", 2048),
    ("--gradient_checkpointing True", "activation_checkpointing", True),
    ("--dataloader_num_workers 2", "dataloader_num_workers", 2),
    ("--lazy_preprocess True", "lazy_preprocess", True),
    ("CUDA_VISIBLE_DEVICES=1 python (one GPU, no DeepSpeed)", "deepspeed", None),
    ("LLaVA's train.py under --bf16 casts the LoRA layers to bf16: no fp32 copy without DeepSpeed", "adapter_dtype",
     "base"),
]


def dry_run(**env):
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "PYTHON": sys.executable,
             "PRESET": "authors", "DRY_RUN": "1", "HAS_CUDA": "1", **env}
    proc = subprocess.run(["bash", "scripts/finetune_asymlora.sh"], cwd=ROOT, env=clean, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("command: "))
    argv = shlex.split(line[len("command: "):])
    assert argv[:3] == [sys.executable, "-m", "llava.train.train"], argv[:3]  # one process: no launcher
    assert "--use_cpu" not in argv and argv[argv.index("--tf32") + 1] == "False"  # as on a GPU: --tf32 False
    parser = transformers.HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    # parsed here on a CPU: bf16 arguments are refused without use_cpu
    parsed = parser.parse_args_into_dataclasses(args=argv[3:] + ["--use_cpu", "True"])
    values = {k: v for part in parsed for k, v in vars(part).items()}
    return values, proc


def value(values, name):
    v = values[name]
    return getattr(v, "value", v)  # enums (save_strategy, lr_scheduler_type) compare by their string


def test_authors_preset_is_their_script_setting_by_setting():
    values, proc = dry_run()
    wrong = [(theirs, ours, value(values, ours), want) for theirs, ours, want in AUTHORS
             if value(values, ours) != want]
    assert not wrong, wrong
    assert "global batch 2 = 1 per device x 1 processes x 1 nodes x 2 accumulation" in proc.stdout
    assert "missing: MODEL=./checkpoints/llava-v1.5-7b" in proc.stderr  # a dry run names what is not there


def test_authors_preset_on_tiny_changes_only_the_model_and_data():
    values, _ = dry_run(MODEL="tiny")
    changed = {"model_name_or_path": "tiny", "vision_tower": None}
    wrong = [(ours, value(values, ours), want) for _, ours, want in AUTHORS
             if ours not in changed and value(values, ours) != want]
    assert not wrong, wrong
    assert all(values[k] == v for k, v in changed.items())


@pytest.mark.slow
def test_authors_preset_trains_on_tiny_and_evaluates_with_resize(tmp_path):
    out = tmp_path / "authors"
    env = {**os.environ, "PRESET": "authors", "MODEL": "tiny", "OUTPUT": str(out), "PYTHON": sys.executable,
           "EXTRA_ARGS": "--max_steps 6"}
    proc = subprocess.run(["bash", "scripts/finetune_asymlora.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert sum("loss" in h for h in history) == 6 and all("balance_loss" in h for h in history if "loss" in h)
    assert json.loads((out / "llava_base.json").read_text())["image_aspect_ratio"] == "resize"
    assert json.loads((out / "llava_adapters.json").read_text())["adapter_dtype"] == "base"  # bf16, no fp32 copy
    summary = json.loads((out / "run_summary.json").read_text())  # what the report's notes say of the run
    assert (summary["optimizer_steps"], summary["global_batch"], summary["world_size"]) == (6, 2, 1)
    assert summary["adapter_precision"] == "bf16, updated with no fp32 copy"
    model, tokenizer, processor = load_checkpoint_model(str(out))
    assert Generator(model, tokenizer, processor).transform.aspect_ratio == "resize"  # evaluated as it was trained


@pytest.mark.parametrize("gpus,line,note", [
    ("2", "global batch 2 = 1 per device x 2 processes x 1 nodes x 1 accumulation", False),
    ("8", "global batch 8 = 1 per device x 8 processes x 1 nodes x 1 accumulation", True)])
def test_authors_global_batch_is_kept_where_it_can_be_and_said_where_not(gpus, line, note):
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "PYTHON": sys.executable,
           "PRESET": "authors", "DRY_RUN": "1", "HAS_CUDA": "1", "NUM_GPUS": gpus}
    proc = subprocess.run(["bash", "scripts/finetune_asymlora.sh"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert line in proc.stdout
    said = "GLOBAL_BATCH=2 (the authors': 2, one GPU, 1 per device x 2 accumulation) cannot be kept"
    assert (said in proc.stdout and "global batch 8 instead of 2" in proc.stdout) == note
