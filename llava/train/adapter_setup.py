"""What a run trains: its adapters from the flags (or a checkpoint's), or the projector alone."""

from __future__ import annotations

import logging

from llava.adapters import AdapterConfig, inject_adapters, print_trainable_parameters
from llava.adapters.attached import routing_state
from llava.adapters.inject import adapter_modules
from llava.adapters.io import load_adapter_weights
from llava.adapters.routing import BlockRouter, label_router_layers
from llava.adapters.schemes import scheme
from llava.model.anatomy import projector
from llava.train.args import ModelArguments, TrainingArguments

logger = logging.getLogger("llava.train")


def adapter_config_from_args(args: TrainingArguments, task_names: list[str]) -> AdapterConfig:
    task_heads = scheme(args.adapter_scheme).task_heads
    num_tasks = args.num_tasks if args.num_tasks > 0 else max(1, len(task_names))
    targets = [t.strip() for t in args.lora_targets.split(",") if t.strip()]
    mixture = [t.strip() for t in args.mixture_targets.split(",")] if args.mixture_targets else None
    if args.lora_bias != "none":
        raise ValueError("--lora_bias other than 'none' is not supported")
    return AdapterConfig(
        scheme=args.adapter_scheme, r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout,
        num_experts=args.num_experts, num_tasks=num_tasks if task_heads else 1,
        router=args.router, top_k=args.top_k, router_input=args.router_input,
        router_temperature=args.router_temperature, router_noise=args.router_noise, router_init=args.router_init,
        router_scope=args.router_scope, targets=targets,
        mixture_targets=mixture, layers=layer_indices(args.lora_layers), balance_coef=args.balance_coef, balance_loss=args.balance_loss,
        router_z_loss_coef=args.router_z_loss_coef,
        router_bias=args.router_bias,
        task_names=task_names if (task_heads and num_tasks > 1) else [],
        adapter_dtype=adapter_dtype(args),
    )


def layer_indices(text: str | None) -> list[int] | None:
    """`--lora_layers` (e.g. "0,2,15-29") as sorted indices; None or "all": every layer."""
    if text is None or text.strip() in ("", "all"):
        return None
    indices = set()
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            indices.update(range(int(first), int(last or first) + 1))
    except ValueError:
        raise ValueError(f"--lora_layers takes indices and ranges like 0,2,15-29, not {text!r}") from None
    if not indices:
        raise ValueError(f"--lora_layers {text!r} names no layer (a range's first index is its lowest)")
    return sorted(indices)


def adapter_dtype(args: TrainingArguments) -> str:
    """Where the adapters' weights live. auto: DeepSpeed keeps fp32 master weights and optimizer state of every
    trainable tensor and flattens them into buffers of one dtype, so under bf16/fp16 the adapters take the model's
    dtype (as LLaVA's trainable tensors do); without DeepSpeed they stay fp32 masters, computed in the activation
    dtype. base without DeepSpeed: the optimizer updates bf16/fp16 weights directly (LLaVA's train.py casting LoRA
    layers to bf16, as the AsymLoRA authors' plain-python run did)."""
    if args.adapter_dtype not in ("auto", "fp32", "base"):
        raise ValueError(f"--adapter_dtype must be auto, fp32 or base, got {args.adapter_dtype!r}")
    if args.adapter_dtype != "auto":
        return args.adapter_dtype
    return "base" if (args.deepspeed and (args.bf16 or args.fp16)) else "fp32"


def initial_adapters(model, args: TrainingArguments, task_names: list[str]) -> AdapterConfig:
    """Inject the run's adapters: fresh from the flags, or a checkpoint's (--init_adapters) with its weights; with
    --train_routers_only everything but the routers (and the projector, unless frozen) stays fixed."""
    if args.init_adapters:
        config = AdapterConfig.load(args.init_adapters)
        config.adapter_dtype = adapter_config_from_args(args, task_names).adapter_dtype  # this run's mode decides
        inject_adapters(model, config, train_projector=not args.freeze_mm_mlp_adapter)
        load_adapter_weights(model, args.init_adapters)
        logger.info("adapters from %s: %s, %d expert(s), r=%d (its config; the scheme flags are not used)",
                    args.init_adapters, config.scheme, config.num_experts, config.r)
    else:
        config = adapter_config_from_args(args, task_names)
        inject_adapters(model, config, train_projector=not args.freeze_mm_mlp_adapter)
    if args.train_routers_only:
        if not config.routed:
            raise ValueError(f"--train_routers_only: this {config.scheme} adapter with {config.num_experts} "
                             "expert(s) has no router")
        for _, module in adapter_modules(model):
            for name, p in module.named_parameters():
                if not name.startswith("base.") and "router" not in name and not isinstance(module, BlockRouter):
                    p.requires_grad_(False)
    return config


def set_trainable(model, model_args: ModelArguments, training_args: TrainingArguments,
                  task_names: list[str]) -> AdapterConfig | None:
    """Freeze what the run does not train; the run's adapter config (None when only the projector trains)."""
    config = None
    if training_args.lora_enable:
        config = initial_adapters(model, training_args, task_names)
        if config.has_routers:
            routing_state(model).start_load_tracking(len(task_names), config.num_experts)
            label_router_layers(model)
    elif model_args.tune_mm_mlp_adapter:
        for p in model.parameters():
            p.requires_grad_(False)
        for p in projector(model).parameters():
            p.requires_grad_(True)
    else:
        raise ValueError("nothing to train: pass --lora_enable True (adapters) or --tune_mm_mlp_adapter True")
    print_trainable_parameters(model)
    if training_args.bits < 16:
        # transformers' Trainer refuses a quantized model unless adapters were attached through its PEFT
        # integration, which this flag records; ours were attached by inject_adapters just above.
        model._hf_peft_config_loaded = True
    return config
