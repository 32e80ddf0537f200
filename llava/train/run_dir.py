"""A run directory belongs to one run.

A new run into an OUTPUT that already holds checkpoints or final weights is refused before the model loads (the
Trainer would otherwise rotate the old checkpoints away and overwrite the weights); `--resume_from_checkpoint` or
`--overwrite_output_dir` say which was meant. An exclusive OS lock on OUTPUT/.llava_run.lock, taken by the main
process for the whole run and released by the OS on exit or crash, refuses a second concurrent run at once.
"""

from __future__ import annotations

import fcntl
import glob
import os

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
