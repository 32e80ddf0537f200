"""Per-row control of a batched generate: stream each row's text as it grows, stop a row at its own limit, at a
stop string, or when its client went away. One StoppingCriteria does all three, since generate calls it once per
step with every row's tokens."""

from __future__ import annotations

import threading

import torch
from transformers import StoppingCriteria


class TokenStream:
    """New text per token at a constant cost per token: tokenizers' DecodeStream (it keeps a few ids of context, so
    a piece that only becomes text with the next id comes out then). A tokenizer without a `tokenizers` backend
    decodes a sliding window: the text of the ids since the last piece, less the text of the one before them."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.backend = getattr(tokenizer, "backend_tokenizer", None)
        self.stream = None
        if self.backend is not None:
            from tokenizers.decoders import DecodeStream

            self.stream = DecodeStream(skip_special_tokens=True)
        self.ids: list[int] = []
        self.prefix = self.read = 0

    def step(self, token: int) -> str:
        if self.stream is not None:
            return self.stream.step(self.backend, token) or ""
        self.ids.append(token)
        before = self.tokenizer.decode(self.ids[self.prefix:self.read], skip_special_tokens=True)
        text = self.tokenizer.decode(self.ids[self.prefix:], skip_special_tokens=True)
        if text.endswith("\ufffd") or not text.startswith(before):  # half a character: wait for the next id
            return ""
        self.prefix, self.read = self.read, len(self.ids)
        return text[len(before):]


class RowText:
    """One row's tokens and the text a client has been sent: the concatenation of what `push` returns equals the
    final `text` (what Generator.decode gives, cut before a stop string). Whitespace at the end, a half UTF-8
    character and the start of a possible stop string are held back until the next token shows what they become.
    Each token costs the same whatever the reply's length: the text grows by its new piece, stop strings are looked
    for in the new piece (and the few characters before it), and what is sent is tracked by its length."""

    def __init__(self, tokenizer, stop: tuple[str, ...] = ()):
        self.tokenizer, self.stop = tokenizer, tuple(s for s in stop if s)
        self.longest_stop = max((len(s) for s in self.stop), default=0)
        self.stream = TokenStream(tokenizer)
        self.ids: list[int] = []
        self.produced = ""  # the decoded reply so far (leading whitespace dropped), cut at a stop string once hit
        self.sent = 0  # characters of `produced` sent
        self.hit_stop = False

    @property
    def text(self) -> str:
        """The final text: one whole decode (as Generator.decode), cut before the first stop string."""
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True).lstrip()
        cut = [text.index(s) for s in self.stop if s in text]
        return (text[:min(cut)] if cut else text).strip()

    def push(self, token: int) -> str:
        self.ids.append(token)
        if self.hit_stop:
            return ""
        piece = self.stream.step(token)
        if not self.produced:
            piece = piece.lstrip()
        before = len(self.produced)
        self.produced += piece
        if self.stop and piece:
            start = max(0, before - self.longest_stop + 1)
            cut = [i for i in (self.produced.find(s, start) for s in self.stop) if i >= 0]
            if cut:
                self.hit_stop = True
                self.produced = self.produced[:min(cut)]
                return self._advance(self._ready_end(hold_stop_prefix=False))
        return self._advance(self._ready_end(hold_stop_prefix=True))

    def _ready_end(self, hold_stop_prefix: bool) -> int:
        """Where the sendable text ends: before trailing whitespace, a half character, or (while the reply goes on) a
        suffix that may be the start of a stop string."""
        text, end = self.produced, len(self.produced)
        while end > self.sent and (text[end - 1].isspace() or text[end - 1] == "\ufffd"):
            end -= 1
        if hold_stop_prefix:
            for s in self.stop:
                for k in range(min(len(s) - 1, end - self.sent), 0, -1):
                    if text.endswith(s[:k], 0, end):
                        end -= k
                        break
            while end > self.sent and text[end - 1].isspace():
                end -= 1
        return end

    def finish(self) -> str:
        final = self.text
        if not final.startswith(self.produced[:self.sent]):  # a tokenizer whose pieces disagree with its whole decode
            return ""
        delta, self.sent = final[self.sent:], len(final)
        return delta

    def _advance(self, end: int) -> str:
        if end <= self.sent:
            return ""
        delta, self.sent = self.produced[self.sent:end], end
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
