"""Runs side by side: `workers` processes, the cores split between them. A 135M model's matmuls at batch 2 do not
keep two threads busy, so on 2 cores two one-thread runs finish sooner than two two-thread runs one after the other
(bench/compare_workers.py, docs/benchmarks.md)."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import torch
from tqdm import tqdm

from llava.console import on_a_terminal, progress_bars_only_on_a_terminal


def _share_cores(threads: int) -> None:
    """Worker start-up: this worker and the training processes it starts use `threads` threads; a spawned worker
    starts with transformers' bars on, so it turns them off itself where its stderr (the parent's) is a log."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    progress_bars_only_on_a_terminal()


def in_workers(jobs: list[tuple], workers: int, desc: str, follow: dict[int, tuple] | None = None) -> list:
    """fn(*args) for every (fn, *args) job, `workers` processes at a time, each given cpu_count // workers threads;
    results in the order of `jobs`. follow[k] is a job queued once job k has finished (its result is dropped): it
    needs k's output, and fills the cores the last jobs leave idle. One worker runs them here, one after the other,
    with every thread."""
    follow = follow or {}
    if workers == 1:
        results = [fn(*args) for fn, *args in tqdm(jobs, desc=desc, unit="job", disable=not on_a_terminal())]
        for fn, *args in follow.values():
            fn(*args)
        return results
    threads = max(1, (os.cpu_count() or 1) // workers)
    results: list = [None] * len(jobs)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_share_cores,
                             initargs=(threads,)) as pool:
        pending = {pool.submit(fn, *args): k for k, (fn, *args) in enumerate(jobs)}
        with tqdm(total=len(jobs) + len(follow), desc=desc, unit="job", disable=not on_a_terminal()) as bar:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    k = pending.pop(future)
                    value = future.result()
                    bar.update()
                    if k >= 0:
                        results[k] = value
                        if k in follow:
                            fn, *args = follow[k]
                            pending[pool.submit(fn, *args)] = -1 - k
    return results
