"""LlavaTrainer: transformers' Trainer plus what LLaVA fine-tuning needs, the whole training step in one file.

* the projector (`--mm_projector_lr`) and the routers (`--router_lr`) in optimizer groups of their own;
* task ids and the token mask handed to the adapter layers before each forward;
* the LM head and loss only on labelled positions (train/supervised_logits.py);
* the balance loss added to the LM loss (value for logging here, gradient injected in backward, see
  adapters/balance.py), both logged separately, averaged over ranks;
* data parallelism as one big batch: N processes x b samples give the loss, gradients and logs of 1 process x N*b;
* a text-only batch still runs the vision path (model/vision_keepalive.py), so ranks issue the same collectives;
* per-layer router health (load, gate entropy, weight change, gradient norm) to the trackers (router_health.py);
* with activation checkpointing, only the language model's input embeddings are hooked
  (train/activation_checkpointing.py): the frozen tower is not back-propagated;
* a non-finite loss or gradient stops the run before the weights change, and no checkpoint with non-finite weights
  is written. Flags collect on the device over the accumulation micro-steps and are read once per optimizer step
  (one all-reduce, one host read), on the micro-step after which the optimizer steps: every rank decides alike;
* complete checkpoints (llava/checkpoint.py: adapters, routers, projector, configs, tokenizer, image processor as
  safetensors; not the frozen base, also under ZeRO-3), in every intermediate checkpoint too; under DeepSpeed the
  whole optimizer state in one file that resumes on any world size (optimizer_state.py).

Past the house's 250 lines on purpose: the step is one concept, read in one sitting, as nanoGPT's loop.
"""

from __future__ import annotations

import logging
import math
import os

import torch
from transformers import Trainer
from transformers.integrations import is_deepspeed_zero3_enabled
from transformers.trainer import SCHEDULER_NAME

from llava.adapters.attached import adapter_config, routing_state
from llava.adapters.io import adapter_state_dict
from llava.adapters.packed import PackedSamples
from llava.adapters.routing import is_router_parameter
from llava.adapters.state import load_shares
from llava.checkpoint import Base, load_trained_weights, newest_checkpoint_note, save_checkpoint
from llava.data.sampler import ModalityLengthGroupedSampler
from llava.model.anatomy import projector_parameter_names, vision_parts
from llava.model.image_text_to_text import is_processor
from llava.model.vision_keepalive import VisionKeepalive
from llava.model.zero import gathered
from llava.train import optimizer_state
from llava.train.activation_checkpointing import CheckpointedLayers, LanguageInputsOnly
from llava.train.rank_record import RankRecord
from llava.train.router_health import RouterHealth
from llava.train.supervised_logits import accepts_logits_mask, supervised_logits_only

__all__ = ["LlavaTrainer", "NonFiniteLossError"]
logger = logging.getLogger(__name__)
RATE_LOGS = {"adapters": "learning_rate", "routers": "router_learning_rate", "projector": "projector_learning_rate"}


class NonFiniteLossError(RuntimeError):
    pass


class LlavaTrainer(Trainer):
    def __init__(self, *args, image_processor=None, base: Base | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.image_processor = image_processor
        self.base = base
        self._loss_parts = {"lm_loss": [], "balance_loss": [], "router_z_loss": []}
        self.rank_record = RankRecord() if self.args.record_ranks else None
        has_tower = bool(vision_parts(self.model))
        family = image_processor if is_processor(image_processor) else None  # another family: its processor
        self.vision_keepalive = VisionKeepalive(self.model, family) if has_tower else None
        self.add_callback(LanguageInputsOnly())  # with activation checkpointing: the frozen tower stays out of autograd
        self.add_callback(CheckpointedLayers())  # --checkpoint_layers: only as many layers as memory needs
        self._guard_values: list[torch.Tensor] = []  # this optimizer step's losses, for the message
        self._guard_bad: torch.Tensor | None = None  # this optimizer step's count of non-finite values
        self.router_health = None
        state = routing_state(self.model)
        trackers = [r for r in (self.args.report_to or []) if r != "none"]
        if state is not None and state.load is not None and trackers:
            self.router_health = RouterHealth(self.model, state, list(base.task_names) if base else [],
                                              adapter_config(self.model).spec.load_unit,
                                              self._sum_over_ranks, self.is_deepspeed_enabled)
            self.add_callback(self.router_health)

    def _sum_over_ranks(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.accelerator.num_processes == 1:
            return tensor
        return self.accelerator.reduce(tensor.to(self.args.device), reduction="sum")

    # --- optimisation ------------------------------------------------------------------------------------------
    def create_optimizer(self, model=None):
        """One group per rate (adapters; the projector and the routers where given their own) x decay / no decay,
        as LLaVA's trainer does for the projector. Under ZeRO-Offload
        accelerate rebuilds this AdamW as DeepSpeed's CPU Adam (decoupled decay: it checks for AdamW) from these
        groups."""
        if self.optimizer is not None:
            return self.optimizer
        model = self.model
        decay = set(self.get_decay_parameter_names(model))
        rates = {"adapters": None, "routers": self.args.router_lr, "projector": self.args.mm_projector_lr}
        groups: dict[tuple[str, bool], list] = {}
        projector = projector_parameter_names(model)
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            kind = "projector" if name in projector else "routers" if is_router_parameter(name) else "adapters"
            kind = kind if rates[kind] is not None else "adapters"  # no rate of its own: the adapters' group
            groups.setdefault((kind, name in decay), []).append(p)
        param_groups = []
        for key in ((kind, has_decay) for kind in rates for has_decay in (False, True)):  # adapters first
            if key in groups:
                kind, has_decay = key
                group = {"params": groups[key], "weight_decay": self.args.weight_decay if has_decay else 0.0,
                         "name": kind}
                if rates[kind] is not None:
                    group["lr"] = rates[kind]
                param_groups.append(group)
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        self.optimizer = optimizer_cls(param_groups, **optimizer_kwargs)
        return self.optimizer

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.group_by_modality_length and hasattr(dataset, "modality_lengths"):
            return ModalityLengthGroupedSampler(dataset.modality_lengths, self.args.train_batch_size,
                                                self.args.world_size * self.args.gradient_accumulation_steps,
                                                seed=self.args.seed)
        return super()._get_train_sampler(train_dataset)

    # --- loss --------------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        task_ids = inputs.pop("task_ids", None)
        sample_index = inputs.pop("sample_index", None)
        if self.rank_record is not None and model.training and sample_index is not None:
            self.rank_record.add(self.state.global_step + 1, sample_index)
        state = routing_state(self.model)
        config = adapter_config(self.model) if state is not None else None
        coef, z_coef = (config.balance_coef, config.router_z_loss_coef) if config is not None else (0.0, 0.0)
        if state is not None:
            state.begin_batch(task_ids, inputs.get("attention_mask"), inputs.get("labels"),
                              PackedSamples.of_batch(inputs, task_ids))  # padding-free batches: several samples a row
            per_step = 1.0 / self.args.gradient_accumulation_steps if model.training else 0.0
            state.aux_grad_scale, state.z_grad_scale = coef * per_step, z_coef * per_step
        if self.vision_keepalive is not None:
            self.vision_keepalive.pending = inputs.get("pixel_values") is None
        scaled_for_ga = num_items_in_batch is not None and self.model_accepts_loss_kwargs
        if scaled_for_ga:
            inputs = {**inputs, "num_items_in_batch": num_items_in_batch}
        if model.training and not return_outputs and "labels" in inputs and accepts_logits_mask(type(self.model)):
            inputs = supervised_logits_only(inputs)  # same loss; the head skips unlabelled positions
        # no KV cache in a training forward (the LM builds one by default: text_config.use_cache), and a packed batch
        # must not have one: transformers keeps packed samples apart only when there is none
        outputs = model(**inputs, use_cache=False)
        loss = outputs.loss
        if scaled_for_ga and self.args.average_tokens_across_devices:
            # The model divided by the supervised-token count of ALL ranks; the data-parallel gradient average
            # divides by the world size once more. Undo that here (as Trainer.compute_loss does), so N x b = 1 x N*b.
            loss = loss * self.accelerator.num_processes
        balance = state.finish_forward() if state is not None else None
        if model.training:
            self._flag_non_finite(loss, balance)
            if self.is_deepspeed_enabled and self.accelerator.sync_gradients:
                self._stop_if_flagged()
        ga = self.args.gradient_accumulation_steps if (scaled_for_ga and model.training) else 1
        self._loss_parts["lm_loss"].append(loss.detach().float() * ga)
        if balance is not None and coef > 0:
            self._loss_parts["balance_loss"].append(balance.detach())
            # The value joins the reported loss; its gradient arrives through AttachAux (coef / GA per step).
            loss = loss + (coef * balance / ga).to(loss.dtype).detach()
        if state is not None and state.z_value is not None and z_coef > 0:
            self._loss_parts["router_z_loss"].append(state.z_value.detach())
            loss = loss + (z_coef * state.z_value / ga).to(loss.dtype).detach()  # gradient: AttachAux, as above
        return (loss, outputs) if return_outputs else loss

    def log(self, logs, *args, **kwargs):
        """Adds lm_loss / balance_loss / router_z_loss (means over the logging window and over ranks: every rank calls
        log) and each optimizer group's learning rate."""
        for key, values in self._loss_parts.items():
            if values and "loss" in logs:
                value = torch.stack(values).mean()
                if self.accelerator.num_processes > 1:
                    value = self.accelerator.reduce(value.to(self.args.device), reduction="mean")
                logs[key] = round(value.item(), 6)
            values.clear()
        self._log_router_load(logs)
        if "learning_rate" in logs and self.optimizer is not None:
            for group in self.optimizer.param_groups:
                if group.get("name") in RATE_LOGS:
                    logs[RATE_LOGS[group["name"]]] = group["lr"]
        super().log(logs, *args, **kwargs)
        if self.router_health is not None and "loss" in logs:  # to the trackers only (router_health.py)
            self.control = self.callback_handler.on_log(self.args, self.state, self.control,
                                                        self.router_health.scalars())

    # --- the non-finite guard ----------------------------------------------------------------------------------
    def _flag_non_finite(self, loss, balance) -> None:
        values = loss.detach().float().reshape(1)
        if balance is not None:
            values = torch.cat([values, balance.detach().float().reshape(1)])
        self._guard_values.append(values)
        bad = (~torch.isfinite(values)).sum()
        self._guard_bad = bad if self._guard_bad is None else self._guard_bad + bad

    def _stop_if_flagged(self, grad_bad=None) -> None:
        """Stop before the optimizer step if any rank saw a non-finite loss (or `grad_bad`: gradients)."""
        bad = self._guard_bad if grad_bad is None else self._guard_bad + grad_bad
        values, self._guard_values, self._guard_bad = self._guard_values, [], None
        if self.accelerator.num_processes > 1:
            bad = self.accelerator.reduce(bad.float().to(self.args.device), reduction="sum")
        if bad.item() == 0:
            return
        step, note = self.state.global_step + 1, newest_checkpoint_note(self.args.output_dir)
        losses = [float(v[0]) for v in values]
        balances = [float(v[1]) for v in values if v.numel() > 1]
        if not all(math.isfinite(x) for x in losses + balances):  # this rank's loss
            loss = next((x for x in losses if not math.isfinite(x)), losses[-1])
            balance = next((x for x in balances if not math.isfinite(x)), balances[-1] if balances else None)
            Trainer.log(self, {"loss": loss, "balance_loss": balance if balance is not None else 0.0})
            raise NonFiniteLossError(f"step {step}: the loss is not finite (loss {loss}, balance loss {balance}); "
                                     f"stopped before updating the weights. {note}")
        if grad_bad is not None and grad_bad.item() > 0:
            raise NonFiniteLossError(f"step {step}: a gradient is not finite (loss {losses[-1]:.4g}); stopped "
                                     f"before the optimizer applied it. {note}")
        raise NonFiniteLossError(f"step {step}: another process's loss is not finite; stopped before updating the "
                                 f"weights. {note}")

    def training_step(self, model, inputs, num_items_in_batch=None):
        """Under DeepSpeed the optimizer steps inside backward: the flags are read in compute_loss, before it. Without
        DeepSpeed they are read after the last micro-step's backward, with the gradients' own check."""
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not self.is_deepspeed_enabled and self.accelerator.sync_gradients and self._guard_bad is not None:
            grads = [p.grad for p in self.accelerator.unwrap_model(self.model).parameters()
                     if p.requires_grad and p.grad is not None]
            grad_bad = (~torch.isfinite(torch.stack([g.detach().float().abs().amax() for g in grads]))).sum() \
                if grads else None
            self._stop_if_flagged(grad_bad)
        return loss

    # --- checkpoints -------------------------------------------------------------------------------------------
    def _save_checkpoint(self, model, trial):
        """Refuse to write a checkpoint whose trainable weights are not finite (nothing is written)."""
        unwrapped = self.accelerator.unwrap_model(self.model)
        params = {n: p for n, p in unwrapped.named_parameters() if p.requires_grad}
        with gathered(params.values()):
            bad = [n for n, p in params.items() if not torch.isfinite(p.detach()).all()]
        if bad:
            raise NonFiniteLossError(f"step {self.state.global_step}: {len(bad)} trainable tensors are not finite "
                                     f"(first: {bad[0]}); no checkpoint written. "
                                     f"{newest_checkpoint_note(self.args.output_dir)}")
        return super()._save_checkpoint(model, trial)

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
        if self.args.should_save:
            save_checkpoint(self.accelerator.unwrap_model(self.model), output_dir or self.args.output_dir, self.base,
                            self.processing_class, self.image_processor, state_dict)

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
        load_trained_weights(self.accelerator.unwrap_model(model if model is not None else self.model),
                             resume_from_checkpoint)
        logger.info("reloaded adapter and projector weights from %s", resume_from_checkpoint)

    def _log_router_load(self, logs) -> None:
        """The router load per task so far (shares; summed over ranks) as `router_load/TASK/expertE` scalars, so
        wandb/tensorboard chart it as it trains; the console line leaves them out (progress.py)."""
        state = routing_state(self.model) if self.model is not None else None
        if "loss" not in logs or state is None or state.load is None:
            return
        load = state.load
        if self.accelerator.num_processes > 1:
            load = self.accelerator.reduce(load.to(self.args.device), reduction="sum")
        unit = adapter_config(self.model).spec.load_unit
        names = list(self.base.task_names) if self.base is not None else []
        for t, row in enumerate(load_shares(load)):
            if load[t].sum() > 0:
                name = names[t] if t < len(names) else str(t)
                logs.update({f"router_load/{name}/{unit}{e}": round(v, 4) for e, v in enumerate(row.tolist())})
