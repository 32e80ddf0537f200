"""Every Python process the test suite starts logs, at exit, what it cost: on PYTHONPATH (bench/suite_census.py)."""

import atexit
import json
import os
import sys
import time

_START = time.time()
_LOG = os.environ.get("SUITE_CENSUS_LOG")


def _record() -> None:
    times = os.times()
    modules = sys.modules
    record = {"argv": list(sys.argv)[:6], "wall": round(time.time() - _START, 2),
              "cpu": round(times.user + times.system, 2), "transformers": "transformers.modeling_utils" in modules,
              "deepspeed": "deepspeed" in modules, "torch": "torch" in modules,
              "test": os.environ.get("PYTEST_CURRENT_TEST", "")}
    with open(_LOG, "a") as f:  # one short line per process, appended: whole lines under concurrent writers
        f.write(json.dumps(record) + "\n")


if _LOG:
    atexit.register(_record)
