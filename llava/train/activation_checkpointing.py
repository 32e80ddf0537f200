"""What activation checkpointing needs from a model whose base is frozen, and nothing more.

Reentrant checkpoints only back-propagate into a segment whose input requires grad; with a frozen embedding table a
text-only batch would give none. transformers' `activation_checkpointing_enable()` therefore calls
`enable_input_require_grads()`, which hooks the input embeddings of every sub-model, the vision tower's patch
embedding included: the frozen tower then builds a graph, is checkpointed, recomputed and back-propagated at every
step. LLaVA runs the frozen tower without grad; so does this: only the language model's input embeddings stay
hooked (the projector, when trained, starts its own graph), and a frozen tower is not checkpointed (with no graph
there is nothing to save, and reentrant checkpoints would warn that its inputs need no grad).
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from transformers import TrainerCallback
from transformers.integrations import is_deepspeed_zero3_enabled

from llava.model.anatomy import language_model
from llava.train.plan_model import GIB, count, layers_to_checkpoint

logger = logging.getLogger("llava.train")


def _require_grad(module, args, output):
    output.requires_grad_(True)


def language_inputs_require_grad(model: nn.Module):
    """After activation checkpointing was enabled: replace transformers' input hooks (every sub-model's embeddings)
    by one on the language model's input embeddings, and stop checkpointing a frozen vision tower. Returns the new
    hook's handle."""
    model.disable_input_require_grads()
    embeddings = model.get_input_embeddings()
    if embeddings is None:
        raise ValueError(f"{type(model).__name__} has no input embeddings to hook")
    tower = getattr(getattr(model, "model", None), "vision_tower", None)
    if tower is not None and not any(p.requires_grad for p in tower.parameters()):
        disable = getattr(tower, "activation_checkpointing_disable", None) or tower.gradient_checkpointing_disable
        disable()  # the older name before transformers 5.2x
    return embeddings.register_forward_hook(_require_grad)


class LanguageInputsOnly(TrainerCallback):
    """The Trainer enables activation checkpointing (and with it the hooks on every sub-model) when training starts;
    this callback then keeps only the language model's."""

    def __init__(self):
        self._handle = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        checkpointing = getattr(args, "activation_checkpointing", None) or getattr(args, "gradient_checkpointing", False)
        if not checkpointing or model is None:
            return
        if self._handle is not None:
            self._handle.remove()
        self._handle = language_inputs_require_grad(model)


def checkpoint_first_layers(model: nn.Module, n: int) -> int:
    """Keep activation checkpointing on the language model's first `n` decoder layers only (transformers sets
    `gradient_checkpointing` on every GradientCheckpointingLayer; a layer without it keeps its activations and is
    not recomputed). Returns how many decoder layers there are."""
    layers = language_model(model).layers
    for index, layer in enumerate(layers):
        layer.gradient_checkpointing = layer.gradient_checkpointing and index < n
    return len(layers)


def zero_stage(args) -> int:
    if is_deepspeed_zero3_enabled():
        return 3
    config = getattr(args, "hf_deepspeed_config", None) if args.deepspeed else None
    return int(config.config.get("zero_optimization", {}).get("stage", 0)) if config is not None else 0


class CheckpointedLayers(TrainerCallback):
    """--checkpoint_layers: all (transformers' default), N, or auto: as few as the GPU's memory needs by the planner's
    estimate at this micro-batch and the longest sequence (85% of the card, for the allocator and the collectives'
    buffers); every layer not checkpointed saves its recompute."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        checkpointing = getattr(args, "activation_checkpointing", None) or getattr(args, "gradient_checkpointing", False)
        if not checkpointing or model is None or args.checkpoint_layers == "all":
            return
        total = len(language_model(model).layers)
        if args.checkpoint_layers != "auto":
            n = int(args.checkpoint_layers)
        elif not torch.cuda.is_available() or args.use_cpu:
            n, why = total, "no GPU to size for"
        else:
            budget = 0.85 * torch.cuda.get_device_properties(args.device).total_memory
            n = layers_to_checkpoint(model.config, count(model), zero_stage(args), args.world_size, args.bits,
                                     args.per_device_train_batch_size, args.model_max_length, budget)
            why = f"the planner's estimate within {budget / GIB:.0f} GiB"
        checkpoint_first_layers(model, n)
        if state.is_world_process_zero:
            reason = f" (auto: {why})" if args.checkpoint_layers == "auto" else ""
            logger.info("activation checkpointing on %d of %d decoder layers%s", n, total, reason)
