"""Entry point: `python -m llava.train.train --model_name_or_path ... --data_path ... --lora_enable True ...`."""

from __future__ import annotations

import logging
import os
import sys

import torch
import transformers

from llava import process_gc
from llava.checkpoint import Base
from llava.console import on_a_terminal, progress_bars_only_on_a_terminal
from llava.data import DataError, ProcessorCollator, SupervisedCollator
from llava.model.builder import load_model
from llava.model.image_text_to_text import is_processor
from llava.model.zero import init_deepspeed_distributed
from llava.train.adapter_setup import set_trainable
from llava.train.args import DataArguments, ModelArguments, TrainingArguments
from llava.train.checks import check_arguments, slow_dtype_note
from llava.train.config_file import ConfigError, parse_with_config, read_config, split_config_flag, write_run_config
from llava.train.data_check import read_training_data
from llava.train.distributed import (
    JobWatch,
    failure_line,
    init_restarted_process_group,
    is_comm_error,
    report_lost_peer,
    stop_process,
)
from llava.train.extras import check_training_extras
from llava.train.optimizer_state import WorldSizeError
from llava.train.progress import use_numeric_console
from llava.train.run_dir import RunDirError, claim_output_dir, resolve_resume
from llava.train.run_report import write_run_report
from llava.train.trainer import LlavaTrainer, NonFiniteLossError

logger = logging.getLogger("llava.train")
ARGUMENT_TYPES = (ModelArguments, DataArguments, TrainingArguments)


def model_dtype(args: TrainingArguments) -> torch.dtype:
    if args.bf16:
        return torch.bfloat16
    if args.fp16:
        return torch.float16
    return torch.float32


def parse_arguments(argv):
    """(model, data, training arguments) from the command line and an optional --config file; the resolved
    settings as given; the console set up for a terminal or a log file."""
    parser = transformers.HfArgumentParser(ARGUMENT_TYPES)
    (model_args, data_args, training_args), resolved = parse_with_config(
        parser, sys.argv[1:] if argv is None else list(argv))
    progress_bars_only_on_a_terminal()
    if not on_a_terminal() and resolved.get("disable_tqdm") is None:  # unset in the file and on the command line
        training_args.disable_tqdm = True  # a log file gets one line per logged step, not a bar
    logging.basicConfig(level=logging.INFO if training_args.should_log else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    check_training_extras(training_args)
    return model_args, data_args, training_args, resolved


def claim_run_directory(training_args):
    """The run's lock on OUTPUT (None on the ranks that do not write it)."""
    return claim_output_dir(training_args.output_dir, training_args.resume_from_checkpoint,
                            training_args.overwrite_output_dir, training_args.process_index == 0 or (
                                training_args.save_on_each_node and training_args.local_process_index == 0),
                            node_local=training_args.save_on_each_node)


def load_base_model(model_args, training_args):
    model, tokenizer, image_processor = load_model(
        model_args.model_name_or_path, vision_tower=model_args.vision_tower,
        pretrain_mm_mlp_adapter=model_args.pretrain_mm_mlp_adapter, dtype=model_dtype(training_args),
        attn_implementation=model_args.attn_implementation, seed=model_args.model_seed, bits=training_args.bits)
    return model, tokenizer, image_processor


def padding_free(model_args, training_args) -> bool:
    """--padding_free as asked; by default on only where attention runs per sample (flash-attn's varlen kernel). SDPA
    and eager attend over the packed row under a block-diagonal mask, quadratic in the whole row's length: slower
    than padding when batches are length-grouped (docs/benchmarks.md, bench/padding_free.py)."""
    if training_args.padding_free is not None:
        return training_args.padding_free
    return model_args.attn_implementation == "flash_attention_2"


def make_collator(tokenizer, image_processor, model_args, training_args):
    """LLaVA-1.5's batches (padded or padding-free), or another family's through its processor."""
    if is_processor(image_processor):
        if training_args.padding_free:
            raise ValueError("--padding_free is for LLaVA-1.5 models so far; leave it unset for this family")
        return ProcessorCollator(image_processor, training_args.model_max_length)
    return SupervisedCollator(tokenizer.pad_token_id, padding_free=padding_free(model_args, training_args))


def base_record(model_args, data_args, training_args, task_names: list[str]) -> Base:
    """How to rebuild the frozen base: written as llava_base.json into every checkpoint."""
    return Base(model_name_or_path=model_args.model_name_or_path, vision_tower=model_args.vision_tower,
                pretrain_mm_mlp_adapter=model_args.pretrain_mm_mlp_adapter, model_seed=model_args.model_seed,
                template=model_args.version, image_aspect_ratio=data_args.image_aspect_ratio,
                task_names=tuple(task_names), bits=training_args.bits)


def save_final(trainer, model, training_args) -> None:
    if training_args.should_save:  # Trainer.save_state writes on rank 0 only; with node-local disks, every node
        trainer.state.save_to_json(os.path.join(training_args.output_dir, "trainer_state.json"))
    trainer.save_model(training_args.output_dir)
    if trainer.rank_record is not None:
        trainer.rank_record.write(model, training_args.output_dir, training_args.process_index)


def train(argv=None, callbacks=None):
    """Parse LLaVA-style arguments and train; `callbacks` are extra transformers TrainerCallbacks."""
    model_args, data_args, training_args, resolved = parse_arguments(argv)
    run_lock = claim_run_directory(training_args)
    try:
        if run_lock is not None:
            write_run_config(training_args.output_dir, resolved, ARGUMENT_TYPES)
        resume = resolve_resume(training_args.output_dir, training_args.resume_from_checkpoint,
                                log=logger.warning if training_args.should_log else (lambda _msg: None))
        init_deepspeed_distributed(bool(training_args.deepspeed), training_args.ddp_timeout)
        check_arguments(model_args, training_args)
        if (note := slow_dtype_note(training_args)) and training_args.should_log:
            logger.warning(note)
        model, tokenizer, image_processor = load_base_model(model_args, training_args)
        dataset = read_training_data(model, tokenizer, image_processor, model_args, data_args, training_args)
        transformers.set_seed(training_args.seed)  # adapter init draws from the global RNG: make --seed govern it
        set_trainable(model, model_args, training_args, dataset.task_names)
        collator = make_collator(tokenizer, image_processor, model_args, training_args)
        if collator.padding_free and training_args.should_log:
            logger.info("padding-free batches: each micro-batch's samples packed in one row")
        trainer = LlavaTrainer(model=model, args=training_args, train_dataset=dataset, data_collator=collator,
                               processing_class=tokenizer, image_processor=image_processor,
                               base=base_record(model_args, data_args, training_args, dataset.task_names),
                               callbacks=callbacks)
        use_numeric_console(trainer)
        trainer.train(resume_from_checkpoint=resume)
        save_final(trainer, model, training_args)
        write_run_report(trainer, model, dataset, collator)
    finally:  # the lock is the run's: released when it ends (the OS also drops it on a crash)
        if run_lock is not None:
            run_lock.close()
    return trainer


def main():
    process_gc.imports_done()
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
