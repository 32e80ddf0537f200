"""Several training runs in one launched job, for the scheme x mode matrix (tests/test_scheme_matrix.py).

Each run's arguments are the scripts' own (their DRY_RUN command line); one process start-up (torch, transformers,
DeepSpeed, the process group) serves every scheme of a cell, which is what keeps the matrix inside the suite's time.
Usage: python -m torch.distributed.run ... -m tests.scripts.scheme_matrix PLAN.json ([{"name": ..., "argv": [...]}, ...])
"""

import json
import sys

from llava.train.train import train


def main(plan_path: str) -> None:
    with open(plan_path) as f:
        plan = json.load(f)
    for run in plan:
        trainer = train(run["argv"])
        del trainer


if __name__ == "__main__":
    main(sys.argv[1])
