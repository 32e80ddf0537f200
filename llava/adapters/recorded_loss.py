"""The bookkeeping every router loss shares (the balance loss, the router z-loss): routers record their statistics
while the forward runs, `finish` computes the value and fixes d(loss)/d(statistic) per router, and backward reads it
through `AttachAux` (state.py), so the logged value and the applied gradient come from the same records, gradient
checkpointing or not (balance.py says why it is not a term added to the LM loss)."""

from __future__ import annotations

import torch


class RecordedLoss:
    what = "router loss"  # named in the error of a gradient asked for too early

    def begin(self) -> None:
        self.keys: list[int] = []
        self.finished = False
        self._grads: dict[int, torch.Tensor] = {}

    def recording(self, key: int) -> bool:
        """True (and the router's key noted) on the forward's first pass; False on a checkpointing recomputation."""
        if self.finished:
            return False
        self.keys.append(key)
        return True

    def compute(self) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """The value and each router's d(value)/d(statistic), from what was recorded."""
        raise NotImplementedError

    def finish(self) -> torch.Tensor | None:
        """The loss value of this forward (before its coefficient); fixes the gradients backward will apply."""
        if self.finished or not self.keys:
            self.finished = True
            return None
        self.finished = True
        value, self._grads = self.compute()
        return value

    def grad_for(self, key: int, like: torch.Tensor) -> torch.Tensor:
        if key not in self._grads:
            raise RuntimeError(f"{self.what} gradient requested before finish(): call adapter_state.finish_forward() "
                               "after the forward and before backward")
        return self._grads[key].to(device=like.device, dtype=like.dtype)
