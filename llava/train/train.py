"""Entry point: `python -m llava.train.train --model_name_or_path ... --data_path ... --lora_enable True ...`."""

from __future__ import annotations

import json
import logging
import os
import sys

import torch
import transformers
from transformers.integrations import is_deepspeed_zero3_enabled

from llava.adapters import AdapterConfig, inject_adapters, print_trainable_parameters
from llava.adapters.inject import adapter_modules, projector
from llava.adapters.io import load_adapter_weights
from llava.adapters.routing import BlockRouter, label_router_layers
from llava.adapters.state import load_table
from llava.console import on_a_terminal, progress_bars_only_on_a_terminal
from llava.data import DataError, SupervisedCollator, SupervisedDataset
from llava.data.preflight import preflight, summary
from llava.model.builder import load_model
from llava.model.image import ImageTransform
from llava.model.zero import init_deepspeed_distributed
from llava.train.args import DataArguments, ModelArguments, TrainingArguments
from llava.train.config_file import ConfigError, parse_with_config, read_config, split_config_flag, write_run_config
from llava.train.distributed import (
    JobWatch,
    failure_line,
    init_restarted_process_group,
    is_comm_error,
    main_process_first,
    report_lost_peer,
    stop_process,
)
from llava.train.extras import check_training_extras
from llava.train.optimizer_state import WorldSizeError
from llava.train.plots import plot_losses, plot_router_health, plot_router_load
from llava.train.progress import use_numeric_console
from llava.train.run_dir import RunDirError, claim_output_dir, resolve_resume
from llava.train.trainer import LlavaTrainer, NonFiniteLossError

logger = logging.getLogger("llava.train")
ARGUMENT_TYPES = (ModelArguments, DataArguments, TrainingArguments)


def adapter_config_from_args(args: TrainingArguments, task_names: list[str]) -> AdapterConfig:
    num_tasks = args.num_tasks if args.num_tasks > 0 else max(1, len(task_names))
    targets = [t.strip() for t in args.lora_targets.split(",") if t.strip()]
    mixture = [t.strip() for t in args.mixture_targets.split(",")] if args.mixture_targets else None
    if args.lora_bias != "none":
        raise ValueError("--lora_bias other than 'none' is not supported")
    return AdapterConfig(
        scheme=args.adapter_scheme, r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout,
        num_experts=args.num_experts, num_tasks=num_tasks if args.adapter_scheme == "asymlora" else 1,
        router=args.router, top_k=args.top_k, router_scope=args.router_scope, targets=targets,
        mixture_targets=mixture, balance_coef=args.balance_coef, balance_loss=args.balance_loss,
        router_bias=args.router_bias,
        task_names=task_names if (args.adapter_scheme == "asymlora" and num_tasks > 1) else [],
        # DeepSpeed keeps fp32 master weights and optimizer state of every trainable tensor and flattens them into
        # buffers of one dtype: under bf16/fp16 the adapters take the model's dtype (as LLaVA's trainable tensors
        # do); without DeepSpeed they stay fp32 masters, computed in the activation dtype.
        adapter_dtype="base" if (args.deepspeed and (args.bf16 or args.fp16)) else "fp32",
    )


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
        if not (config.num_experts > 1 and config.scheme in ("asymlora", "moe_lora")):
            raise ValueError(f"--train_routers_only: this {config.scheme} adapter with {config.num_experts} "
                             "expert(s) has no router")
        for _, module in adapter_modules(model):
            for name, p in module.named_parameters():
                if not name.startswith("base.") and "router" not in name and not isinstance(module, BlockRouter):
                    p.requires_grad_(False)
    return config


def model_dtype(args: TrainingArguments) -> torch.dtype:
    if args.bf16:
        return torch.bfloat16
    if args.fp16:
        return torch.float16
    return torch.float32


def check_data_before_training(dataset, data_args, training_args) -> None:
    """Pre-flight every sample (data/preflight.py) after the structural read: stop with one summary of every
    problem, or (--skip_bad_samples) drop exactly the bad samples and list them in OUTPUT/skipped_samples.jsonl."""
    workers = data_args.preflight_workers
    if workers < 0:
        workers = min(8, os.cpu_count() or 1) if len(dataset) >= 2000 else 0
    with main_process_first(training_args, "pre-flight"):  # rank 0 checks, the others read its cache
        bad = preflight(dataset, workers=workers, show_progress=training_args.should_log)
    structural = list(dataset.report.skipped)
    problems = structural + [(f"{b.file}: sample {b.sample_id}", b.reason) for b in bad]
    if problems and not data_args.skip_bad_samples:
        raise DataError(summary(problems, len(dataset) + len(structural)))
    if training_args.should_save and data_args.skip_bad_samples:
        os.makedirs(training_args.output_dir, exist_ok=True)
        rows = [{"where": where, "reason": reason} for where, reason in structural] + [b.to_json() for b in bad]
        with open(os.path.join(training_args.output_dir, "skipped_samples.jsonl"), "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
    if bad:
        dataset.drop(b.index for b in bad)
    if problems:
        logger.warning("skipping %d bad samples found before training (OUTPUT/skipped_samples.jsonl)", len(problems))
    dataset.preflight_skipped = len(bad)


def train(argv=None, callbacks=None):
    """Parse LLaVA-style arguments and train; `callbacks` are extra transformers TrainerCallbacks."""
    parser = transformers.HfArgumentParser(ARGUMENT_TYPES)
    (model_args, data_args, training_args), resolved = parse_with_config(
        parser, sys.argv[1:] if argv is None else list(argv))
    progress_bars_only_on_a_terminal()
    if not on_a_terminal() and resolved.get("disable_tqdm") is None:  # unset in the file and on the command line
        training_args.disable_tqdm = True  # a log file gets one line per logged step, not a bar
    logging.basicConfig(level=logging.INFO if training_args.should_log else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    check_training_extras(training_args)
    run_lock = claim_output_dir(training_args.output_dir, training_args.resume_from_checkpoint,
                                training_args.overwrite_output_dir, training_args.process_index == 0 or (
                                    training_args.save_on_each_node and training_args.local_process_index == 0),
                                node_local=training_args.save_on_each_node)
    try:
        if run_lock is not None:
            write_run_config(training_args.output_dir, resolved, ARGUMENT_TYPES)
        resume = resolve_resume(training_args.output_dir, training_args.resume_from_checkpoint,
                                log=logger.warning if training_args.should_log else (lambda _msg: None))
        init_deepspeed_distributed(bool(training_args.deepspeed), training_args.ddp_timeout)
        if model_args.mm_projector_type != "mlp2x_gelu" or model_args.mm_vision_select_layer != -2:
            raise ValueError("only LLaVA-1.5's projector (mlp2x_gelu) on vision layer -2 is supported")
        if model_args.mm_use_im_start_end or model_args.mm_use_im_patch_token:
            raise ValueError("--mm_use_im_start_end/--mm_use_im_patch_token are LLaVA-1.0 options; LLaVA-1.5 uses False")
        if training_args.fp16 and training_args.adapter_scheme != "lora" and training_args.balance_coef > 0:
            raise ValueError("fp16 loss scaling does not reach the injected balance-loss gradient; use --bf16")

        if training_args.bits < 16 and is_deepspeed_zero3_enabled():
            raise ValueError(f"--bits {training_args.bits} with ZeRO-3 ({training_args.deepspeed}) is not supported: ZeRO-3 "
                             "cannot partition bitsandbytes' packed weights here. Use configs/deepspeed/zero2.json or no "
                             "DeepSpeed (a 4-bit 7B LM fits one GPU).")
        if training_args.bits < 16 and not training_args.lora_enable:
            raise ValueError("--bits 4/8 (QLoRA) trains adapters on a frozen quantized LM: pass --lora_enable True")
        model, tokenizer, image_processor = load_model(
            model_args.model_name_or_path, vision_tower=model_args.vision_tower,
            pretrain_mm_mlp_adapter=model_args.pretrain_mm_mlp_adapter, dtype=model_dtype(training_args),
            attn_implementation=model_args.attn_implementation, seed=model_args.model_seed, bits=training_args.bits)
        model.config.use_cache = False

        with main_process_first(training_args, "read-data"):  # rank 0 builds the Arrow cache, others map it
            dataset = SupervisedDataset(
                data_args.data_path, tokenizer, ImageTransform(image_processor, data_args.image_aspect_ratio),
                image_folder=data_args.image_folder, template=model_args.version,
                image_seq_length=model.config.image_seq_length, model_max_length=training_args.model_max_length,
                skip_bad=data_args.skip_bad_samples, defer_errors=True)
        logger.info("%d samples, tasks %s", len(dataset), dataset.task_names)
        check_data_before_training(dataset, data_args, training_args)

        transformers.set_seed(training_args.seed)  # adapter init draws from the global RNG: make --seed govern it
        if training_args.lora_enable:
            config = initial_adapters(model, training_args, dataset.task_names)
            if config.num_experts > 1 and config.scheme in ("asymlora", "moe_lora", "mixlora"):
                model.adapter_state.start_load_tracking(len(dataset.task_names), config.num_experts)
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

        base_info = dict(model_name_or_path=model_args.model_name_or_path, vision_tower=model_args.vision_tower,
                         pretrain_mm_mlp_adapter=model_args.pretrain_mm_mlp_adapter, model_seed=model_args.model_seed,
                         template=model_args.version, image_aspect_ratio=data_args.image_aspect_ratio,
                         task_names=dataset.task_names, bits=training_args.bits)
        collator = SupervisedCollator(tokenizer.pad_token_id)
        trainer = LlavaTrainer(model=model, args=training_args, train_dataset=dataset, data_collator=collator,
                               processing_class=tokenizer, image_processor=image_processor, base_info=base_info,
                               callbacks=callbacks)
        use_numeric_console(trainer)
        trainer.train(resume_from_checkpoint=resume)
        if training_args.should_save:  # Trainer.save_state writes on rank 0 only; with node-local disks, every node
            trainer.state.save_to_json(os.path.join(training_args.output_dir, "trainer_state.json"))
        trainer.save_model(training_args.output_dir)
        if trainer.rank_record is not None:
            trainer.rank_record.write(model, training_args.output_dir, training_args.process_index)

        report_lines = [f"samples truncated to model_max_length={training_args.model_max_length}: {dataset.truncated}",
                        f"bad samples skipped: {dataset.report.total() + dataset.preflight_skipped} before training "
                        f"(OUTPUT/skipped_samples.jsonl), {collator.dropped} at fetch"]
        state = getattr(model, "adapter_state", None)
        if state is not None and state.load is not None:
            table = load_table(state.load, dataset.task_names, "factor" if config.scheme == "mixlora" else "expert")
            what = "a-factor selection weight per factor" if config.scheme == "mixlora" else "gate mass per expert"
            report_lines += [f"router load per task (share of {what}, all routed layers):", table]
            if training_args.should_save:
                with open(os.path.join(training_args.output_dir, "router_load.md"), "w") as f:
                    f.write(table + "\n")
                plot_router_load(state.load, state.layer_load, dataset.task_names,
                                 "factor" if config.scheme == "mixlora" else "expert",
                                 os.path.join(training_args.output_dir, "plots", "router_load.png"))
        if training_args.should_save and trainer.router_health is not None and "tensorboard" in trainer.args.report_to:
            plot_router_health(os.path.join(training_args.output_dir, "runs"),
                               os.path.join(training_args.output_dir, "plots", "router_health.png"))
        if training_args.should_save and plot_losses(trainer.state.log_history,
                                                     os.path.join(training_args.output_dir, "plots", "loss.png")):
            report_lines.append(f"plots: {os.path.join(training_args.output_dir, 'plots')}")
        if training_args.should_log:
            print("\n".join(report_lines))
    finally:  # the lock is the run's: released when it ends (the OS also drops it on a crash)
        if run_lock is not None:
            run_lock.close()
    return trainer


def main():
    argv = sys.argv[1:]
    if "-h" in argv or "--help" in argv:
        from llava.train.help import short_help

        print(short_help())
        return
    if "--help-all" in argv:
        argv = ["--help"]
    watch = JobWatch.from_env()
    timeout = 1800.0
    try:
        path, flags = split_config_flag(argv)
        from_file = read_config(path) if path else {}
        timeout = float(_flag(flags, "ddp_timeout", str(from_file.get("ddp_timeout", 1800))))
        init_restarted_process_group(timeout, _flag(flags, "use_cpu", str(from_file.get("use_cpu", False))).lower() == "true")
        train(argv)
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            # Tear the process group down while the interpreter is alive: left to exit, gloo's threads can be
            # destroyed joinable ("terminate called without an active exception", SIGABRT) after a run that succeeded.
            dist.barrier()
            if watch is not None:
                watch.close()
            dist.destroy_process_group()
    except (RunDirError, DataError, WorldSizeError, NonFiniteLossError, ConfigError) as err:  # the user's to fix: one line
        if watch is not None:
            watch.announce(f"rank {os.environ.get('RANK', 0)}: {str(err).splitlines()[0]}")
        stop_process(str(err), code=2 if not isinstance(err, NonFiniteLossError) else 1)
    except Exception as err:  # re-raised: the other ranks are told first, not left waiting in a collective
        if watch is None:
            raise
        if isinstance(err, RuntimeError) and is_comm_error(err):
            report_lost_peer(watch, err, timeout)
        watch.announce(failure_line(err))  # an OOM, a bad sample, a bug: every rank's watch stops within seconds
        watch.close()
        raise


def _flag(argv: list[str], name: str, default: str) -> str:
    """A flag's value read before the arguments are parsed (parsing builds TrainingArguments, which may start the
    process group that a restart must start itself); transformers' default when absent."""
    for i, arg in enumerate(argv):
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return default


if __name__ == "__main__":
    main()
