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

from torch import nn
from transformers import TrainerCallback


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
