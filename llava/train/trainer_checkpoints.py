"""What a LlavaTrainer checkpoint holds and how a run resumes from one: adapters, routers and projector (not the
frozen base, also under ZeRO-3), configs, tokenizer and image processor as safetensors; under DeepSpeed the whole
optimizer state in one file that resumes on any world size (optimizer_state.py). A mixin of LlavaTrainer.
"""

from __future__ import annotations

import logging
import os

import torch
from transformers.integrations import is_deepspeed_zero3_enabled
from transformers.trainer import SCHEDULER_NAME

from llava.adapters.attached import adapter_config
from llava.adapters.inject import projector
from llava.adapters.io import PROJECTOR_PREFIX, adapter_state_dict, atomic_save_file, load_adapters, save_adapters
from llava.model.builder import load_projector
from llava.model.checkpoint import write_base_info
from llava.model.zero import gathered
from llava.train import optimizer_state

logger = logging.getLogger(__name__)
PROJECTOR_FILE = "mm_projector.safetensors"


class AdapterCheckpoints:
    def save_model(self, output_dir=None, _internal_call=False):
        """Under ZeRO-3 gather only what a checkpoint holds (adapters, routers, projector), not the frozen base."""
        model = self.accelerator.unwrap_model(self.model)
        if self.is_deepspeed_enabled and is_deepspeed_zero3_enabled() and adapter_config(model):
            params = adapter_state_dict(model)
            with gathered(params.values()):
                tensors = {k: v.detach().cpu().clone() for k, v in params.items()}
            self._save(output_dir, state_dict=tensors)
            return
        super().save_model(output_dir, _internal_call)

    def _save(self, output_dir=None, state_dict=None):
        output_dir = output_dir or self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        model = self.accelerator.unwrap_model(self.model)
        if adapter_config(model) is not None:
            names = adapter_state_dict(model).keys()
            tensors = None if state_dict is None else {k: state_dict[k] for k in names if k in state_dict}
            save_adapters(model, output_dir, state_dict=tensors)
        elif projector(model) is not None:  # stage 1: projector only, in LLaVA's key layout
            src = state_dict if state_dict is not None else dict(model.named_parameters())
            tensors = {k.replace(PROJECTOR_PREFIX + "linear_1.", "model.mm_projector.0.")
                       .replace(PROJECTOR_PREFIX + "linear_2.", "model.mm_projector.2."): v
                       for k, v in src.items() if k.startswith(PROJECTOR_PREFIX)}
            atomic_save_file(tensors, os.path.join(output_dir, PROJECTOR_FILE))
        model.config.save_pretrained(output_dir)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        if self.image_processor is not None:
            self.image_processor.save_pretrained(output_dir)
        write_base_info(output_dir, **self.base_info)

    def _save_optimizer_and_scheduler(self, output_dir):
        """Under DeepSpeed, the checkpoint holds only what trains: DeepSpeed's own save_checkpoint would write the
        frozen base (ZeRO-1/2 module states) and per-rank optimizer partitions beside the whole state written here,
        which alone resumes on any world size (train/optimizer_state.py)."""
        if not self.is_deepspeed_enabled:
            return super()._save_optimizer_and_scheduler(output_dir)
        optimizer_state.save(self.model_wrapped, self.accelerator.unwrap_model(self.model), output_dir,
                             self.args.world_size, self.args.should_save)
        if self.args.should_save:
            torch.save(self.lr_scheduler.state_dict(), os.path.join(output_dir, SCHEDULER_NAME))

    def _prepare_for_training(self, max_steps, train_dataloader, resume_from_checkpoint):
        """Under DeepSpeed the engine starts empty and the checkpoint's whole state (optimizer_state.py) and the
        scheduler are loaded into it, whatever world size wrote it. A checkpoint holding DeepSpeed's own files only
        (written by an earlier version) resumes through DeepSpeed on the world size that wrote it."""
        if not (self.is_deepspeed_enabled and resume_from_checkpoint):
            return super()._prepare_for_training(max_steps, train_dataloader, resume_from_checkpoint)
        saved = optimizer_state.saved_world_size(resume_from_checkpoint)
        if not os.path.exists(os.path.join(resume_from_checkpoint, optimizer_state.FILE)):
            if saved and saved != self.args.world_size:
                raise optimizer_state.WorldSizeError(
                    f"{resume_from_checkpoint} has no {optimizer_state.FILE} (written by an earlier version): resume "
                    f"it on the number of processes that wrote it ({saved})")
            return super()._prepare_for_training(max_steps, train_dataloader, resume_from_checkpoint)
        model, train_dataloader = super()._prepare_for_training(max_steps, train_dataloader, None)
        if saved != self.args.world_size:
            logger.warning("resuming %s, written by %d processes, on %d", resume_from_checkpoint, saved,
                           self.args.world_size)
        optimizer_state.load(self.model_wrapped, self.accelerator.unwrap_model(self.model), resume_from_checkpoint)
        self.model_wrapped.global_steps = self.state.global_step  # DeepSpeed's own step count (its logs, monitors)
        self._load_optimizer_and_scheduler(resume_from_checkpoint)  # under DeepSpeed: the Trainer's scheduler
        for group, lr in zip(self.optimizer.param_groups, self.lr_scheduler.get_last_lr()):
            group["lr"] = lr  # a scheduler's state holds the rate; the groups' own were set by the optimizer's state
        return model, train_dataloader

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        model = self.accelerator.unwrap_model(model if model is not None else self.model)
        if adapter_config(model) is not None:
            load_adapters(model, resume_from_checkpoint)
        elif os.path.exists(os.path.join(resume_from_checkpoint, PROJECTOR_FILE)):
            load_projector(model, os.path.join(resume_from_checkpoint, PROJECTOR_FILE))
        logger.info("reloaded adapter and projector weights from %s", resume_from_checkpoint)
