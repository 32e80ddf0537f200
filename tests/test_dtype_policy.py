"""The dtype policy of docs/training.md ("Precision"), one process without DeepSpeed: a bf16 base and projector,
fp32 adapters and routers (their own masters, computed in bf16), optimizer state in each tensor's dtype. The
DeepSpeed side (adapters in the model's dtype, fp32 masters inside DeepSpeed) is run in tests/test_scheme_matrix.py."""

import torch

from llava.adapters.inject import adapter_modules
from llava.model.anatomy import projector
from llava.train.adapter_setup import adapter_config_from_args
from llava.train.args import TrainingArguments
from llava.train.train import train


def test_single_process_bf16_keeps_fp32_adapter_masters(tmp_path, small_data):
    spec, folder = small_data
    trainer = train(["--model_name_or_path", "tiny", "--data_path", spec, "--image_folder", folder,
                     "--output_dir", str(tmp_path / "run"), "--lora_enable", "True", "--lora_r", "4",
                     "--lora_alpha", "8", "--adapter_scheme", "asymlora", "--num_experts", "3", "--router_scope",
                     "mlp_block", "--mixture_targets", "gate_proj,up_proj,down_proj", "--balance_coef", "0.05",
                     "--per_device_train_batch_size", "4", "--max_steps", "1", "--report_to", "none",
                     "--disable_tqdm", "True", "--save_strategy", "no", "--use_cpu", "True", "--bf16", "True"])
    model = trainer.model
    adapters = {n: p for _, m in adapter_modules(model) for n, p in m.named_parameters() if not n.startswith("base.")}
    assert adapters and {p.dtype for p in adapters.values()} == {torch.float32}
    assert {p.dtype for p in projector(model).parameters()} == {torch.bfloat16}
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert {p.dtype for p in frozen} == {torch.bfloat16}
    state = trainer.optimizer.state
    for p in list(adapters.values()) + list(projector(model).parameters()):
        assert state[p]["exp_avg"].dtype == p.dtype


def test_under_deepspeed_in_bf16_or_fp16_adapters_take_the_models_dtype():
    def config(deepspeed=None, **kw):
        args = TrainingArguments(output_dir="unused", use_cpu=True, report_to="none", lora_enable=True, **kw)
        args.deepspeed = deepspeed  # set after parsing: no DeepSpeed state is created in this process
        return adapter_config_from_args(args, [])

    assert config(bf16=True).adapter_dtype == "fp32"
    assert config().adapter_dtype == "fp32"
    assert config("configs/deepspeed/zero2.json", bf16=True).adapter_dtype == "base"
    assert config("configs/deepspeed/zero2.json").adapter_dtype == "fp32"  # fp32 runs: fp32 all through
