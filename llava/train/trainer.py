"""LlavaTrainer: transformers' Trainer plus what LLaVA fine-tuning needs.

* the projector in its own optimizer group at `--mm_projector_lr`;
* task ids and the token mask handed to the adapter layers before each forward;
* the LM head and loss only on labelled positions (train/supervised_logits.py);
* the balance loss added to the LM loss (value for logging here, gradient injected in backward, see
  adapters/balance.py), both logged separately, averaged over ranks;
* data parallelism as one big batch: N processes x b samples give the loss, gradients and logs of 1 process x N*b;
* a text-only batch still runs the vision path (model/vision_keepalive.py), so ranks issue the same collectives;
* per-layer router health (load, gate entropy, weight change, gradient norm) to the trackers (router_health.py);
* with activation checkpointing, only the language model's input embeddings are hooked (train/activation_checkpointing.py):
  the frozen tower is not back-propagated;
* a non-finite loss or gradient stops the run before the weights change (non_finite_guard.py);
* complete checkpoints: adapters + routers + projector + configs + tokenizer + image processor, in every
  intermediate checkpoint too, written as safetensors; resuming reloads them (trainer_checkpoints.py).
"""

from __future__ import annotations

import torch
from transformers import Trainer

from llava.adapters.attached import adapter_config, routing_state
from llava.adapters.io import PROJECTOR_PREFIX
from llava.adapters.state import load_shares
from llava.data.sampler import ModalityLengthGroupedSampler
from llava.model.vision_keepalive import VisionKeepalive
from llava.train.activation_checkpointing import LanguageInputsOnly
from llava.train.deepspeed_config import cpu_adam_class, offloads_optimizer
from llava.train.non_finite_guard import NonFiniteGuard, NonFiniteLossError
from llava.train.rank_record import RankRecord
from llava.train.router_health import RouterHealth
from llava.train.supervised_logits import accepts_logits_mask, supervised_logits_only
from llava.train.trainer_checkpoints import AdapterCheckpoints

__all__ = ["LlavaTrainer", "NonFiniteLossError"]


class LlavaTrainer(NonFiniteGuard, AdapterCheckpoints, Trainer):
    def __init__(self, *args, image_processor=None, base_info: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.image_processor = image_processor
        self.base_info = base_info or {}
        self._loss_parts = {"lm_loss": [], "balance_loss": []}
        self.rank_record = RankRecord() if self.args.record_ranks else None
        has_tower = getattr(getattr(self.model, "model", None), "vision_tower", None) is not None
        self.vision_keepalive = VisionKeepalive(self.model) if has_tower else None
        self.add_callback(LanguageInputsOnly())  # with activation checkpointing: the frozen tower stays out of autograd
        self.router_health = None
        state = routing_state(self.model)
        trackers = [r for r in (self.args.report_to or []) if r != "none"]
        if state is not None and state.load is not None and trackers:
            self.router_health = RouterHealth(self.model, state, self.base_info.get("task_names") or [],
                                              adapter_config(self.model).spec.load_unit,
                                              self._sum_over_ranks, self.is_deepspeed_enabled)
            self.add_callback(self.router_health)

    def _sum_over_ranks(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.accelerator.num_processes == 1:
            return tensor
        return self.accelerator.reduce(tensor.to(self.args.device), reduction="sum")

    # --- optimisation ------------------------------------------------------------------------------------------
    def create_optimizer(self, model=None):
        """Two learning rates (adapters / projector) x decay / no decay, as LLaVA's trainer."""
        if self.optimizer is not None:
            return self.optimizer
        model = self.model
        decay = set(self.get_decay_parameter_names(model))
        proj_lr = self.args.mm_projector_lr
        groups: dict[tuple[bool, bool], list] = {}
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            is_proj = proj_lr is not None and name.startswith(PROJECTOR_PREFIX)
            groups.setdefault((is_proj, name in decay), []).append(p)
        param_groups = []
        for (is_proj, has_decay), params in sorted(groups.items()):  # adapters first: the Trainer logs group 0's lr
            group = {"params": params, "weight_decay": self.args.weight_decay if has_decay else 0.0,
                     "name": "projector" if is_proj else "adapters"}
            if is_proj:
                group["lr"] = proj_lr
            param_groups.append(group)
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        if offloads_optimizer(self.args):
            optimizer_cls = cpu_adam_class()
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
        coef = adapter_config(self.model).balance_coef if state is not None else 0.0
        if state is not None:
            state.begin_batch(task_ids, inputs.get("attention_mask"), inputs.get("labels"))
            state.aux_grad_scale = coef / self.args.gradient_accumulation_steps if model.training else 0.0
        if self.vision_keepalive is not None:
            self.vision_keepalive.pending = inputs.get("pixel_values") is None
        scaled_for_ga = num_items_in_batch is not None and self.model_accepts_loss_kwargs
        if scaled_for_ga:
            inputs = {**inputs, "num_items_in_batch": num_items_in_batch}
        if model.training and not return_outputs and "labels" in inputs and accepts_logits_mask(type(self.model)):
            inputs = supervised_logits_only(inputs)  # same loss; the head skips unlabelled positions
        outputs = model(**inputs)
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
        return (loss, outputs) if return_outputs else loss

    def log(self, logs, *args, **kwargs):
        """Adds lm_loss / balance_loss (means over the logging window and over ranks: every rank calls log) and
        each optimizer group's learning rate."""
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
                if group.get("name") == "projector":
                    logs["projector_learning_rate"] = group["lr"]
                elif group.get("name") == "adapters":
                    logs["learning_rate"] = group["lr"]
        super().log(logs, *args, **kwargs)
        if self.router_health is not None and "loss" in logs:  # to the trackers only (router_health.py)
            self.control = self.callback_handler.on_log(self.args, self.state, self.control,
                                                        self.router_health.scalars())

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
        names = (self.base_info or {}).get("task_names") or []
        for t, row in enumerate(load_shares(load)):
            if load[t].sum() > 0:
                name = names[t] if t < len(names) else str(t)
                logs.update({f"router_load/{name}/{unit}{e}": round(v, 4) for e, v in enumerate(row.tolist())})
