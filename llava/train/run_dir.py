"""A run directory belongs to one run.

A new run into an OUTPUT that already holds checkpoints or final weights is refused before the model loads (the
Trainer would otherwise rotate the old checkpoints away and overwrite the weights); `--resume_from_checkpoint` or
`--overwrite_output_dir` say which was meant. An exclusive OS lock on OUTPUT/.llava_run.lock, taken by the main
process for the whole run and released by the OS on exit or crash, refuses a second concurrent run at once.

An elastic restart (torchrun --max-restarts, TORCHELASTIC_RESTART_COUNT > 0) is the same run: it may use the OUTPUT
its earlier attempt wrote and resumes from the newest checkpoint complete on every node by itself.
"""

from __future__ import annotations

import fcntl
import os

from llava.checkpoint import checkpoint_problem, checkpoints_newest_first, newest_complete, trained_weight_files

LOCK_NAME = ".llava_run.lock"


class RunDirError(RuntimeError):
    pass


def used_by_a_run(output_dir: str) -> list[str]:
    found = sorted(os.path.basename(p) for p in checkpoints_newest_first(output_dir))
    return found + trained_weight_files(output_dir)


def elastic_restart() -> int:
    """How many times torchrun restarted this job's workers (0: the first attempt, or not under torchrun)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def claim_output_dir(output_dir: str, resume, overwrite: bool, is_main: bool, node_local: bool = False):
    """Check and lock OUTPUT; returns the open lock file (keep it for the run's lifetime) or None off the main rank
    (with node-local saving, each node's first process is main for its own disk)."""
    if not is_main:
        return None
    previous = used_by_a_run(output_dir) if os.path.isdir(output_dir) else []
    if previous and not resume and not overwrite and not elastic_restart():
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
        hint = (" SAVE_ON_EACH_NODE=1 with an OUTPUT the nodes share? Unset it on a shared file system."
                if node_local else "")
        raise RunDirError(f"another run is writing to {output_dir} (lock {LOCK_NAME} held by pid {holder}); "
                          f"wait for it or choose another OUTPUT.{hint}") from err
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def resolve_resume(output_dir: str, resume, log=print):
    """`last` (or true): the newest checkpoint-N complete on every node, saying which newer ones were skipped and
    why; a path: that checkpoint, refused with the reason if incomplete. None/False: no resume (on an elastic
    restart: `last` if a complete checkpoint exists, else a fresh start)."""
    restart = elastic_restart()
    if resume in (None, False, "", "False", "false"):
        if not restart:
            return None
        found = newest_complete(output_dir, log)
        log(f"elastic restart {restart}: " + (f"resuming from {found}" if found else
                                              "no complete checkpoint yet, starting over"))
        return found
    if resume not in (True, "last", "true", "True"):
        problem = checkpoint_problem(resume)
        if problem:
            raise RunDirError(f"cannot resume from {resume}: {problem}; --resume_from_checkpoint last picks the "
                              "newest complete one")
        return resume
    path = newest_complete(output_dir, log)
    if path is None:
        found = checkpoints_newest_first(output_dir)
        raise RunDirError(f"--resume_from_checkpoint last: no checkpoint-N complete on every node in {output_dir}"
                          + (f" (skipped {len(found)} here)" if found else ""))
    log(f"resuming from {path}")
    return path
