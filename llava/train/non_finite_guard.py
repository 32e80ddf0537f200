"""Stop before a non-finite loss or gradient reaches the weights, and never write a non-finite checkpoint.

Flags collect on the device over the accumulation micro-steps and are read once per optimizer step (one all-reduce
and one host read), on the micro-step after which the optimizer steps: every rank decides alike, on gradients that
DDP has all-reduced, and no other micro-step waits for the device. A mixin of LlavaTrainer (trainer.py), which calls
`_flag_non_finite` from its loss and `_stop_if_flagged` before DeepSpeed's in-backward step.
"""

from __future__ import annotations

import math

import torch
from transformers import Trainer

from llava.model.zero import gathered
from llava.train.run_dir import checkpoints_newest_first


class NonFiniteLossError(RuntimeError):
    pass


def newest_checkpoint_note(output_dir: str) -> str:
    found = checkpoints_newest_first(output_dir)
    if not found:
        return "No checkpoint was written yet."
    return f"The newest checkpoint, {found[0]}, holds finite weights (--resume_from_checkpoint {found[0]})."


class NonFiniteGuard:
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._guard_values: list[torch.Tensor] = []  # this optimizer step's losses, for the message
        self._guard_bad: torch.Tensor | None = None  # this optimizer step's count of non-finite values

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

