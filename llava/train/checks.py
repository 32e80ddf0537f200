"""Flag combinations a run refuses before it loads anything (each a ValueError the user can act on), and the one it
only warns about: bf16 on a CPU that emulates it."""

from __future__ import annotations

import torch
from transformers.integrations import is_deepspeed_zero3_enabled

from llava.adapters.schemes import scheme
from llava.model.cpu_dtype import bf16_slowdown, cpu_compute_dtype
from llava.train.args import ModelArguments, TrainingArguments


def check_arguments(model_args: ModelArguments, training_args: TrainingArguments) -> None:
    if model_args.mm_projector_type != "mlp2x_gelu" or model_args.mm_vision_select_layer != -2:
        raise ValueError("only LLaVA-1.5's projector (mlp2x_gelu) on vision layer -2 is supported")
    if model_args.mm_use_im_start_end or model_args.mm_use_im_patch_token:
        raise ValueError("--mm_use_im_start_end/--mm_use_im_patch_token are LLaVA-1.0 options; LLaVA-1.5 uses False")
    if training_args.fp16 and not scheme(training_args.adapter_scheme).plain and training_args.balance_coef > 0:
        raise ValueError("fp16 loss scaling does not reach the injected balance-loss gradient; use --bf16")
    if training_args.bits < 16 and is_deepspeed_zero3_enabled():
        raise ValueError(f"--bits {training_args.bits} with ZeRO-3 ({training_args.deepspeed}) is not supported: ZeRO-3 "
                         "cannot partition bitsandbytes' packed weights here. Use configs/deepspeed/zero2.json or no "
                         "DeepSpeed (a 4-bit 7B LM fits one GPU).")
    if training_args.checkpoint_layers not in ("all", "auto") and not training_args.checkpoint_layers.isdigit():
        raise ValueError(f"--checkpoint_layers {training_args.checkpoint_layers}: all, auto or a number of layers")
    if training_args.bits < 16 and not training_args.lora_enable:
        raise ValueError("--bits 4/8 (QLoRA) trains adapters on a frozen quantized LM: pass --lora_enable True")


def slow_dtype_note(training_args: TrainingArguments) -> str | None:
    """One line when the run asked for bf16 on a CPU without native bf16 (kept: it is what was asked for)."""
    on_cpu = training_args.use_cpu or not torch.cuda.is_available()
    if not (on_cpu and training_args.bf16) or cpu_compute_dtype() == "bf16":
        return None
    return (f"note: --bf16 on this CPU is emulated (a bf16 matmul takes {bf16_slowdown():.0f}x an fp32 one): "
            "without --bf16 this run trains in fp32, many times faster")
