"""A run directory belongs to one run.

A new run into an OUTPUT that already holds checkpoints or final weights is refused before the model loads (the
Trainer would otherwise rotate the old checkpoints away and overwrite the weights); `--resume_from_checkpoint` or
`--overwrite_output_dir` say which was meant. An exclusive OS lock on OUTPUT/.llava_run.lock, taken by the main
process for the whole run and released by the OS on exit or crash, refuses a second concurrent run at once.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import pickle

import torch
from transformers.trainer_pt_utils import safe_globals

LOCK_NAME = ".llava_run.lock"
FINAL_WEIGHTS = ("adapter_model.safetensors", "mm_projector.safetensors")


class RunDirError(RuntimeError):
    pass


def used_by_a_run(output_dir: str) -> list[str]:
    found = sorted(os.path.basename(p) for p in glob.glob(os.path.join(output_dir, "checkpoint-*")))
    return found + [f for f in FINAL_WEIGHTS if os.path.exists(os.path.join(output_dir, f))]


def claim_output_dir(output_dir: str, resume, overwrite: bool, is_main: bool):
    """Check and lock OUTPUT; returns the open lock file (keep it for the run's lifetime) or None off the main rank."""
    if not is_main:
        return None
    previous = used_by_a_run(output_dir) if os.path.isdir(output_dir) else []
    if previous and not resume and not overwrite:
        raise RunDirError(f"{output_dir} already holds a run ({', '.join(previous[:4])}): pass "
                          "--resume_from_checkpoint last to continue it, --overwrite_output_dir to replace it, or "
                          "choose another OUTPUT")
    os.makedirs(output_dir, exist_ok=True)
    handle = open(os.path.join(output_dir, LOCK_NAME), "a+")  # held open for the whole run
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as err:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise RunDirError(f"another run is writing to {output_dir} (lock {LOCK_NAME} held by pid {holder}); "
                          "wait for it or choose another OUTPUT") from err
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def checkpoints_newest_first(output_dir: str) -> list[str]:
    """OUTPUT/checkpoint-N directories, highest N first."""
    def step(path: str) -> int:
        tail = path.rsplit("-", 1)[-1]
        return int(tail) if tail.isdigit() else -1
    return sorted(glob.glob(os.path.join(output_dir, "checkpoint-*")), key=step, reverse=True)


def checkpoint_problem(path: str) -> str | None:
    """Why `path` is not a complete checkpoint, or None. transformers writes a checkpoint in place and its
    trainer_state.json last, so a save killed part-way leaves it without one (or with a cut one)."""
    state = os.path.join(path, "trainer_state.json")
    if not os.path.exists(state):
        return "no trainer_state.json (the save did not finish)"
    try:
        with open(state) as f:
            json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        return f"trainer_state.json is unreadable ({err})"
    if not any(os.path.exists(os.path.join(path, f)) for f in FINAL_WEIGHTS):
        return "no adapter or projector weights"
    if not (os.path.exists(os.path.join(path, "optimizer.pt")) or glob.glob(os.path.join(path, "global_step*"))):
        return "no optimizer state"
    for name in ["optimizer.pt", "scheduler.pt", *sorted(os.path.basename(p) for p in
                                                        glob.glob(os.path.join(path, "rng_state*.pth")))]:
        refusal = _tensors_only_refusal(os.path.join(path, name))
        if refusal:
            return refusal
    return None


def _tensors_only_refusal(path: str) -> str | None:
    """Resuming unpickles these files; check first (tensors-only, memory-mapped, no code runs) and name the file."""
    if not os.path.exists(path):
        return None
    try:
        with safe_globals():  # the numpy RNG types transformers itself allows when it reloads rng_state.pth
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        return f"refused to load {path}: not a tensors-only checkpoint file ({type(err).__name__})"
    return None


def resolve_resume(output_dir: str, resume, log=print):
    """`last` (or true): the newest complete checkpoint-N, saying which newer ones were skipped and why;
    a path: that checkpoint, refused with the reason if incomplete. None/False: no resume."""
    if resume in (None, False, "", "False", "false"):
        return None
    if resume not in (True, "last", "true", "True"):
        problem = checkpoint_problem(resume)
        if problem:
            raise RunDirError(f"cannot resume from {resume}: {problem}; --resume_from_checkpoint last picks the "
                              "newest complete one")
        return resume
    found = checkpoints_newest_first(output_dir)
    for path in found:
        problem = checkpoint_problem(path)
        if problem is None:
            log(f"resuming from {path}")
            return path
        log(f"skipping {path}: {problem}")
    raise RunDirError(f"--resume_from_checkpoint last: no complete checkpoint-N in {output_dir}"
                      + (f" (skipped {len(found)} incomplete)" if found else ""))
