"""Shared fixtures: the tiny preset and small LLaVA-format data sets written into tmp dirs."""

from __future__ import annotations

import json
import os
import tempfile

import pytest
import torch
from PIL import Image

from llava.model.tiny import build_tiny

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# the pre-flight data check caches its results; tests keep theirs out of the user's ~/.cache
os.environ.setdefault("LLAVA_ASYMLORA_CACHE", tempfile.mkdtemp(prefix="llava-test-cache-"))
# `make test` runs 2 pytest workers on 2 cores, and many tests start training subprocesses: one compute thread per
# process keeps them from oversubscribing the cores (measured: the multi-process and script tests take ~35% less time).
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tiny()[1]


@pytest.fixture
def tiny():
    model, tokenizer = build_tiny(seed=0)
    return model, tokenizer


def write_images(folder, n=4, size=40):
    os.makedirs(folder, exist_ok=True)
    names = []
    for i in range(n):
        name = f"img{i}.png"
        Image.new("RGB", (size + 8 * i, size), (40 * i, 200 - 30 * i, 90)).save(os.path.join(folder, name))
        names.append(name)
    return names


def conversation(i, image=None, task=None, question="what shape is it?", answer="circle"):
    row = {"id": f"s{i}", "conversations": [
        {"from": "human", "value": ("<image>\n" if image else "") + question},
        {"from": "gpt", "value": answer}]}
    if image:
        row["image"] = image
    if task:
        row["task"] = task
    return row


@pytest.fixture
def small_data(tmp_path):
    """A 3-task mixture of 24 samples (some text-only), images in tmp_path."""
    return write_small_data(tmp_path)


def write_small_data(tmp_path):
    names = write_images(tmp_path)
    answers = {"shape": ["circle", "triangle"], "color": ["red", "blue"], "yesno": ["yes", "no"]}
    paths = {}
    for task, options in answers.items():
        rows = [conversation(f"{task}{i}", image=names[i % len(names)] if i % 4 else None,
                             question=f"what {task} is it?", answer=options[i % 2]) for i in range(8)]
        path = tmp_path / f"{task}.json"
        path.write_text(json.dumps(rows))
        paths[task] = str(path)
    spec = ",".join(f"{t}={p}" for t, p in paths.items())
    return spec, str(tmp_path)


def pytest_collection_modifyitems(config, items):
    """`cuda`-marked tests are collected everywhere and skipped, with the reason, where no GPU is present."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (bench/gpu/validate.sh runs `pytest -m cuda` on a GPU)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def pytest_addoption(parser):
    parser.addoption("--fuzz-long", type=float, default=0.0, metavar="MINUTES",
                     help="run each fuzz property (tests/test_fuzz.py) with fresh seeds for MINUTES, by hand")
