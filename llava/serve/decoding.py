"""Per-row control of a batched generate: stream each row's text as it grows, stop a row at its own limit, at a
stop string, or when its client went away. One StoppingCriteria does all three, since generate calls it once per
step with every row's tokens."""

from __future__ import annotations

import threading

import torch
from transformers import StoppingCriteria


class RowText:
    """One row's tokens and the text a client has been sent: the concatenation of what `push` returns equals the
    final `text` (what Generator.decode gives, cut before a stop string). Whitespace at the end, a half UTF-8
    character and the start of a possible stop string are held back until the next token shows what they become."""

    def __init__(self, tokenizer, stop: tuple[str, ...] = ()):
        self.tokenizer, self.stop = tokenizer, tuple(s for s in stop if s)
        self.ids: list[int] = []
        self.sent = ""
        self.hit_stop = False

    def _decoded(self) -> str:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True).lstrip()
        cut = [text.index(s) for s in self.stop if s in text]
        if cut:
            self.hit_stop = True
            text = text[:min(cut)]
        return text

    @property
    def text(self) -> str:
        return self._decoded().strip()

    def push(self, token: int) -> str:
        self.ids.append(token)
        ready = self._decoded()
        if not self.hit_stop:
            ready = ready.rstrip().rstrip("\ufffd")
            for s in self.stop:  # hold back a suffix that may be the start of a stop string
                for k in range(min(len(s) - 1, len(ready)), 0, -1):
                    if ready.endswith(s[:k]):
                        ready = ready[:-k]
                        break
        ready = ready.rstrip()
        return self._advance(ready)

    def finish(self) -> str:
        return self._advance(self.text)

    def _advance(self, ready: str) -> str:
        if len(ready) <= len(self.sent) or not ready.startswith(self.sent):
            return ""
        delta, self.sent = ready[len(self.sent):], ready
        return delta


class RowControl(StoppingCriteria):
    """rows[i] is stopped at limits[i] tokens, at end of sequence, at one of its stop strings or when cancelled[i]
    is set; on_text[i] (or None) receives each new piece of its text."""

    def __init__(self, tokenizer, limits: list[int], stops: list[tuple[str, ...]], cancelled: list[threading.Event],
                 on_text: list):
        self.limits, self.cancelled, self.on_text = limits, cancelled, on_text
        self.rows = [RowText(tokenizer, s) for s in stops]
        self.eos = tokenizer.eos_token_id
        self.done = [False] * len(limits)
        self.reason = ["length"] * len(limits)

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        last = input_ids[:, -1].tolist()
        for i, token in enumerate(last):
            if self.done[i]:
                continue
            if self.cancelled[i].is_set():
                self.end(i, "cancelled")
                continue
            if token == self.eos:
                self.end(i, "stop")
                continue
            delta = self.rows[i].push(token)
            if delta and self.on_text[i] is not None:
                self.on_text[i](delta)
            if self.rows[i].hit_stop:
                self.end(i, "stop")
            elif len(self.rows[i].ids) >= self.limits[i]:
                self.end(i, "length")
        return torch.tensor(self.done, device=input_ids.device)

    def end(self, i: int, reason: str) -> None:
        self.done[i], self.reason[i] = True, reason
        delta = self.rows[i].finish()
        if delta and self.on_text[i] is not None:
            self.on_text[i](delta)
