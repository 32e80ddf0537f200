"""One thread runs the model; requests that arrive together are answered by one batched generate.

A request waits in a bounded queue (full: 429). The engine takes the oldest, waits a short window for more, and
runs every waiting request it can batch with it: the same checkpoint and the same sampling (greedy requests batch
with each other whatever their task heads, lengths and stop strings). Greedy answers are the same batched or
alone: rows are left-padded and masked, as llava.eval.generate does.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch
from PIL import Image
from transformers import StoppingCriteriaList

from llava.adapters.trace import trace_routing
from llava.inference import is_sampling
from llava.serve.decoding import RowControl
from llava.serve.errors import Busy, ServeError, Unavailable
from llava.serve.models import ServedModel


@dataclass
class Job:
    served: ServedModel
    prompt: str
    image: Image.Image | None
    max_new_tokens: int
    task_id: int | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    trace: bool = False  # record the routing of every reply token (routed checkpoints)
    on_text: object = None  # callable(str), called from the engine thread with each new piece of the reply
    prompt_tokens: int = 0
    cancelled: threading.Event = field(default_factory=threading.Event)
    result: Future = field(default_factory=Future)

    def batch_key(self) -> tuple:
        sampling = (self.temperature, self.top_p) if is_sampling(self.temperature) else (0.0, 1.0)
        return id(self.served), sampling


@dataclass
class Result:
    text: str
    token_ids: list[int]
    finish_reason: str  # stop | length | cancelled
    prompt_tokens: int
    routing: torch.Tensor | None = None  # [reply tokens, layers, experts] gate mass, when traced
    batch_size: int = 1


class Engine:
    def __init__(self, max_batch: int = 32, window_s: float = 0.01, max_queue: int = 256):
        self.max_batch, self.window_s, self.max_queue = max(1, max_batch), window_s, max_queue
        self._queue: collections.deque[Job] = collections.deque()
        self._cv = threading.Condition()
        self._stopped = False
        self.batches_run = 0
        self._thread = threading.Thread(target=self._loop, name="engine", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Job:
        with self._cv:
            if len(self._queue) >= self.max_queue:
                raise Busy(f"server busy: {len(self._queue)} requests are waiting (--max-queue {self.max_queue}); "
                           "retry later", code="queue_full")
            self._queue.append(job)
            self._cv.notify()
        return job

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify()

    def _take_batch(self) -> list[Job]:
        with self._cv:
            while not self._queue and not self._stopped:
                self._cv.wait()
            if self._stopped:
                return []
            deadline = time.monotonic() + self.window_s
            while len(self._queue) < self.max_batch and (left := deadline - time.monotonic()) > 0:
                self._cv.wait(left)
            key = self._queue[0].batch_key()
            batch, rest = [], collections.deque()
            for job in self._queue:
                (batch if len(batch) < self.max_batch and job.batch_key() == key else rest).append(job)
            self._queue = rest
        return [j for j in batch if not (j.cancelled.is_set() and j.result.cancel())]

    def _loop(self) -> None:
        while not self._stopped:
            batch = self._take_batch()
            if batch:
                self._run(batch)

    def _run(self, jobs: list[Job]) -> None:
        served = jobs[0].served
        gen = served.generator
        control = RowControl(gen.tokenizer, [j.max_new_tokens for j in jobs], [j.stop for j in jobs],
                             [j.cancelled for j in jobs], [j.on_text for j in jobs])
        tracing = any(j.trace for j in jobs) and served.routed
        try:
            with trace_routing(gen.model) if tracing else contextlib.nullcontext() as trace:
                gen.generate_ids([j.prompt for j in jobs], [j.image for j in jobs],
                                 [j.max_new_tokens for j in jobs], jobs[0].temperature, jobs[0].top_p,
                                 task_ids=[j.task_id for j in jobs], stopping_criteria=StoppingCriteriaList([control]))
            routing = trace.per_token(max(j.max_new_tokens for j in jobs)) if tracing else None
        except torch.OutOfMemoryError as e:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self._fail(jobs, Unavailable(f"out of memory while answering {len(jobs)} request(s) with "
                                         f"{served.name}: {str(e).splitlines()[0]}; retry, or send shorter requests",
                                         code="out_of_memory"))
            return
        except ServeError as e:
            self._fail(jobs, e)
            return
        except Exception as e:  # noqa: BLE001 - a bug of ours: every waiting client gets it, the engine goes on
            self._fail(jobs, e)
            return
        self.batches_run += 1
        for i, job in enumerate(jobs):
            if not control.done[i]:  # generate ended without this row's own stop (it cannot, but say so if it did)
                control.end(i, "length")
            row = control.rows[i]
            traced = None
            if routing is not None and job.trace:
                traced = routing[i, :len(row.ids)]
            job.result.set_result(Result(row.text, list(row.ids), control.reason[i], job.prompt_tokens, traced,
                                         len(jobs)))

    @staticmethod
    def _fail(jobs: list[Job], error: Exception) -> None:
        for job in jobs:
            if not job.result.done():
                job.result.set_exception(error)
