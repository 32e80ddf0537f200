"""A job of many processes fails as a whole, within DIST_TIMEOUT, saying which process was lost.

A process that dies leaves the others inside a collective: gloo sees the closed connection at once, NCCL (or a
node that vanished without closing anything) waits for the process group's timeout (`--ddp_timeout`, which the
scripts set from DIST_TIMEOUT; the backends' default is 30 minutes). Beside that, every process writes a heartbeat to
the job's rendezvous store (the launcher's TCPStore at MASTER_ADDR:MASTER_PORT) and watches it for a failure that
another process announced: so a survivor can name the lost rank (its heartbeat stopped), and every process of the
job stops, not only those that were waiting in a collective.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
import threading
import time

import torch.distributed as dist

HEARTBEAT_S = 2.0
COMM_ERROR_MARKS = ("Connection closed by peer", "Connection reset by peer", "Timed out", "timed out", "NCCL",
                    "Socket Timeout", "Broken pipe", "failed to recv", "failed to send")


def is_comm_error(err: BaseException) -> bool:
    return isinstance(err, dist.DistError) or any(mark in str(err) for mark in COMM_ERROR_MARKS)


class JobWatch:
    """Heartbeats and a shared failure flag in the launcher's store (keys under one restart's prefix)."""

    current: JobWatch | None = None  # this process's watch, for main_process_first

    def __init__(self, rank: int, world_size: int, host: str, port: int, restart: int):
        self.rank, self.world_size = rank, world_size
        self.prefix, self.address = f"llava-watch/{restart}", f"{host}:{port}"
        self.store = dist.TCPStore(host, port, is_master=False, timeout=datetime.timedelta(seconds=30),
                                   wait_for_workers=False)
        self._stop = threading.Event()
        self._beat()
        self._thread = threading.Thread(target=self._run, name="llava-job-watch", daemon=True)
        self._thread.start()
        JobWatch.current = self

    @classmethod
    def from_env(cls) -> JobWatch | None:
        """One per process of a torchrun job with more than one process; None otherwise."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1 or "MASTER_ADDR" not in os.environ or "TORCHELASTIC_RUN_ID" not in os.environ:
            return None
        return cls(int(os.environ["RANK"]), world, os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                   int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")))

    def _beat(self) -> None:
        self.store.set(f"{self.prefix}/alive/{self.rank}", repr(time.time()))

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._beat()
                if self.store.check([f"{self.prefix}/failed"]):
                    reason = self.store.get(f"{self.prefix}/failed").decode()
                    stop_process(f"rank {self.rank}: stopping, another process of this job failed: {reason}")
            except (RuntimeError, dist.DistError):
                pass  # the store is gone with its node: the collectives' own timeout ends this process

    def lost_ranks(self) -> list[int] | None:
        """Ranks whose heartbeat stopped (waits a few beats first); None if the store cannot be read."""
        time.sleep(3 * HEARTBEAT_S)
        now, lost = time.time(), []
        try:
            for r in range(self.world_size):
                key = f"{self.prefix}/alive/{r}"
                if not self.store.check([key]) or now - float(self.store.get(key).decode()) > 2.5 * HEARTBEAT_S:
                    lost.append(r)
        except (RuntimeError, dist.DistError):
            return None
        return lost

    def failure(self) -> str | None:
        """The failure another process announced, or None."""
        with contextlib.suppress(RuntimeError, dist.DistError):
            if self.store.check([f"{self.prefix}/failed"]):
                return self.store.get(f"{self.prefix}/failed").decode()
        return None

    def check(self, key: str) -> bool:
        return self.store.check([key])

    def set(self, key: str, value: str) -> None:
        self.store.set(key, value)

    def announce(self, reason: str) -> None:
        with contextlib.suppress(RuntimeError, dist.DistError):  # store gone: every process fails on its own then
            if not self.store.check([f"{self.prefix}/failed"]):
                self.store.set(f"{self.prefix}/failed", reason)

    def close(self) -> None:
        JobWatch.current = None
        self._stop.set()
        self._thread.join(timeout=2 * HEARTBEAT_S)


def init_restarted_process_group(timeout_s: float, use_cpu: bool) -> None:
    """On an elastic restart, start the process group under a key prefix of its own in the launcher's store.

    torchrun's agent keeps one store across restarts (static and c10d rendezvous), and the process group's keys
    from the failed attempt are still in it: a restarted rank can read a dead peer's address and fail to connect.
    accelerate then finds the group initialised and uses it."""
    restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    if restart == 0 or int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return
    import torch

    timeout = datetime.timedelta(seconds=timeout_s)
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                          timeout=timeout, wait_for_workers=False)
    cuda = torch.cuda.is_available() and not use_cpu
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo", store=dist.PrefixStore(f"llava-attempt-{restart}", store),
                            rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]), timeout=timeout)


def stop_process(message: str, code: int = 1) -> None:
    """Print one line and end this process now: after a lost peer, interpreter shutdown can block in the
    backend's teardown, and a process left behind holds its GPU."""
    print(f"\nerror: {message}", file=sys.stderr, flush=True)  # on a line of its own after a progress bar
    sys.stdout.flush()
    os._exit(code)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else ""


def failure_line(err: BaseException) -> str:
    """`rank R: Type: first line of the message`, what the other processes print when this one fails."""
    first = _first_line(err)
    return f"rank {os.environ.get('RANK', '?')}: {type(err).__name__}{': ' + first if first else ''}"


def report_lost_peer(watch: JobWatch, err: BaseException, timeout_s: float) -> None:
    """The survivor's line: which rank was lost, what the backend said, and the bound that applied."""
    rank = os.environ.get("RANK", "?")
    announced = watch.failure()
    if announced is not None:  # the peer said why before it went: that is the cause, not the broken connection
        stop_process(f"rank {rank}: stopping, another process of this job failed: {announced}")
    first = _first_line(err) or type(err).__name__
    lost = watch.lost_ranks()
    if lost is None:
        who = f"lost the job's rendezvous store at {watch.address} (its node is gone)"
    elif lost:
        who = f"lost rank{'s' if len(lost) > 1 else ''} {', '.join(map(str, lost))} (no heartbeat)"
    else:
        who = "a collective failed while every rank still has a heartbeat"
    reason = f"{who} [{first}]; DIST_TIMEOUT={timeout_s:g}s"
    watch.announce(f"rank {rank} saw: {reason}")
    stop_process(f"rank {rank}: {reason}")


@contextlib.contextmanager
def main_process_first(args, name: str, timeout_s: float = 6 * 3600):
    """transformers' `main_process_first` (each node's first process reads and checks the data while the others
    wait, then they read its cache), waiting on a key in the job's store rather than in a barrier: that phase takes
    minutes for 665k samples, which DIST_TIMEOUT must not cut. A failure there reaches the waiters by the watch."""
    watch = JobWatch.current
    if watch is None:
        with args.main_process_first(desc=name):
            yield
        return
    key = f"{watch.prefix}/ready/{name}/node{os.environ.get('GROUP_RANK', '0')}"
    if args.local_process_index != 0:
        deadline = time.time() + timeout_s
        while not watch.check(key):
            if time.time() > deadline:
                stop_process(f"rank {watch.rank}: the node's first process did not finish '{name}' in {timeout_s:g} s")
            time.sleep(0.2)
    yield
    if args.local_process_index == 0:
        watch.set(key, "done")
