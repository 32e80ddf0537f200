"""Off a terminal, a library's own tqdm bar that no switch turns off leaves no line in the log; the rest is kept; the
kit's spawned workers keep transformers' bars off as their parent does."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = """
import sys
from tqdm.auto import tqdm
from llava.console import library_bar_as_nothing
with library_bar_as_nothing("Converting and de-quantizing GGUF tensors"):
    for _ in tqdm(range(50), desc="Converting and de-quantizing GGUF tensors..."):
        pass
    print("a warning the block printed", file=sys.stderr)
print("after", file=sys.stderr)
"""


def test_a_library_bar_leaves_nothing_in_a_log_file():
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    assert run.stderr.splitlines() == ["a warning the block printed", "after"], run.stderr
    assert "\r" not in run.stderr


def bars_enabled() -> bool:
    import transformers

    return transformers.utils.logging.is_progress_bar_enabled()


def test_the_kits_spawned_workers_keep_their_bars_off_a_terminal():
    """A spawned worker starts with transformers' bars on; where its stderr (the parent's) is a log, it turns them
    off itself, as the parent did (the kit evaluates in workers: "Loading weights" bars in a redirected log)."""
    script = ("from llava.kit.workers import in_workers\nfrom tests.test_console import bars_enabled\n"
              "print(in_workers([(bars_enabled,), (bars_enabled,)], 2, 'jobs'))")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    assert run.stdout.strip() == "[False, False]", run.stdout + run.stderr
