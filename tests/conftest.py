"""Shared fixtures: the tiny preset and small LLaVA-format data sets written into tmp dirs."""

from __future__ import annotations

import gc
import os
import shutil
import tempfile

import pytest
import torch
from filelock import FileLock

from llava import process_gc
from llava.model.tiny import build_tiny
from tests.helpers.data import write_small_data
from tests.helpers.training import run_training

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# the pre-flight data check, the GGUF conversion and the small preset cache their results; tests keep theirs out of the
# user's ~/.cache, in one directory for every worker of a run (xdist's run id), so the GGUF file is de-quantized once
# per run, not once per worker (entries are published by an atomic rename: llava/cache.py)
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID")
os.environ.setdefault("LLAVA_ASYMLORA_CACHE", os.path.join(tempfile.gettempdir(), f"llava-test-cache-{_RUN}") if _RUN
                      else tempfile.mkdtemp(prefix="llava-test-cache-"))
# `make test` runs 2 pytest workers on 2 cores, and many tests start training subprocesses: one compute thread per
# process keeps them from oversubscribing the cores (measured: the multi-process and script tests take ~35% less time).
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)
# the test processes train and evaluate in-process: their young generation is collected as the package's commands'
# is (llava/process_gc.py); not marked as a command, so only what collection made is frozen (below)
process_gc.command_threshold()


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tiny()[1]


@pytest.fixture
def tiny():
    model, tokenizer = build_tiny(seed=0)
    return model, tokenizer


@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory):
    """`trained_tiny(scheme, *extra)`: the output directory of a 2-step tiny run (tests/helpers/training.py's
    run_training on write_small_data's mixture; `checkpoint-2` inside), trained once per test session for each
    recipe and shared by the pytest workers (a file lock; the workers' common temp dir). Tests only read it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if worker else base) / "trained-tiny"
    root.mkdir(exist_ok=True)

    def get(scheme: str, *extra: str):
        name = "-".join([scheme, *(e.strip("-").replace("/", "_") for e in extra)])
        run = root / name
        with FileLock(str(root / f"{name}.lock")):
            if not (run / "done").exists():
                shutil.rmtree(run, ignore_errors=True)
                run_training(write_small_data(root / f"{name}-data"), run / "out", scheme, max_steps=2, extra=list(extra))
                (run / "done").write_text("")
        return run / "out"

    return get


@pytest.fixture
def small_data(tmp_path):
    """A 3-task mixture of 24 samples (some text-only), images in tmp_path."""
    return write_small_data(tmp_path)


def pytest_collection_modifyitems(config, items):
    """Files with `slow` tests run first: `make test`'s two workers take whole files in collection order, so the long
    files start early and the short ones fill the end, instead of one worker finishing a long file alone.
    `cuda`-marked tests are collected everywhere and skipped, with the reason, where no GPU is present."""
    slow_files = {item.path for item in items if "slow" in item.keywords}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: each file's own order kept
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (bench/gpu/validate.sh runs `pytest -m cuda` on a GPU)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def pytest_collection_finish(session):
    """What collection made (every imported module, class and collected test) lives until the worker exits: frozen,
    so the collections the tests' own allocations set off (and the Trainer's gc.collect() at each training start)
    stop walking it, as a command's do after its imports (llava/process_gc.py)."""
    gc.freeze()


def pytest_addoption(parser):
    parser.addoption("--fuzz-long", type=float, default=0.0, metavar="MINUTES",
                     help="run each fuzz property (tests/test_fuzz.py) with fresh seeds for MINUTES, by hand")
