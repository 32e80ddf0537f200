"""Off a terminal, a library's own tqdm bar that no switch turns off leaves no line in the log; the rest is kept."""

import subprocess
import sys

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
