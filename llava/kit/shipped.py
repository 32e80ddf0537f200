"""The small preset's tower and projector as the package ships them, so a fresh machine starts from weights, not
from two minutes of fitting.

Both are fitted by their recipes (shape_tower.py, word_projector.py), which are deterministic for a CPU and thread
count but not across them; shipping the pair fitted on the project's machine (held-out accuracies as the docs give
them) also makes the kit's numbers the same on every machine. A recipe whose key is not shipped is fitted and cached as before.

python -m llava.kit.shipped write    re-fit the default recipes (2 threads) and ship the result (maintainers)
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile

import torch

SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")


def shipped(kind: str, key: str, done: str) -> str | None:
    """The shipped directory of `kind` ("tower" or "projector") made by the recipe with `key`, if the package has it."""
    path = os.path.join(SHIPPED, f"{kind}-{key}")
    return path if os.path.exists(os.path.join(path, done)) else None


def write() -> None:
    from llava.kit.shape_tower import pretrained_tower
    from llava.kit.small import smollm2_gguf
    from llava.kit.word_projector import aligned_projector
    from llava.model.parts import lm_location

    torch.set_num_threads(2)  # the thread count the shipped pair was fitted with (this project's machines)
    gguf = smollm2_gguf()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LLAVA_ASYMLORA_CACHE"] = tmp  # fitted here, never a cached copy
        fitted = {"tower": pretrained_tower(use_shipped=False),
                  "projector": os.path.dirname(aligned_projector(lm_location(gguf), gguf, use_shipped=False))}
        shutil.rmtree(SHIPPED, ignore_errors=True)
        os.makedirs(SHIPPED)
        for kind, path in fitted.items():
            key = os.path.basename(path).rsplit("-", 1)[1]
            shutil.copytree(path, os.path.join(SHIPPED, f"{kind}-{key}"))
            print(f"shipped {kind} {key}: {sorted(os.listdir(path))}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["write"])
    ap.parse_args(argv)
    write()


if __name__ == "__main__":
    main()
