"""MM-Vet's official grading protocol, with the grader prompt read from the installed lmms-eval at run time.

The few-shot prompt is lmms-eval's `MM_VET_PROMPT` (MM-Vet's own), read from `lmms_eval/tasks/mmvet/utils.py` by
parsing the file, not importing it: importing that module builds an API client from the environment. The query, the
score parser and the retries follow lmms-eval's `mmvet_process_results`: the first word of the reply as a float in
[0, 1]; an unparseable reply is asked again 0.5 warmer until the temperature would reach 2, then graded 0.0.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

TEMPERATURES = (0.0, 0.5, 1.0, 1.5)  # lmms-eval's retries: +0.5 per unparseable reply, 0.0 once it reaches 2
MAX_TOKENS = 128  # lmms-eval's judge setting for MM-Vet
INSTALL = "pip install --no-deps lmms-eval==0.7.3 (the version the tests read)"


class GraderUnavailable(RuntimeError):
    pass


def lmms_eval_mmvet_file() -> str:
    spec = importlib.util.find_spec("lmms_eval")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise GraderUnavailable(f"MM-Vet is graded with the official prompt read from lmms-eval, which is not "
                                f"installed: {INSTALL}")
    path = os.path.join(list(spec.submodule_search_locations)[0], "tasks", "mmvet", "utils.py")
    if not os.path.isfile(path):
        raise GraderUnavailable(f"the installed lmms-eval has no {path}: {INSTALL}")
    return path


@lru_cache(maxsize=1)
def official_prompt() -> str:
    """MM_VET_PROMPT as the installed lmms-eval defines it (a string literal at its module's top level)."""
    path = lmms_eval_mmvet_file()
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "MM_VET_PROMPT"
                                                 for t in node.targets)
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            return node.value.value
    raise GraderUnavailable(f"{path} no longer defines MM_VET_PROMPT as a string: {INSTALL}")


def grader_version() -> str:
    try:
        return f"lmms-eval {version('lmms-eval')}"
    except PackageNotFoundError:
        return "lmms-eval (version unknown)"


def query(question: str, ground_truth: str, prediction: str) -> str:
    """The text sent to the judge: the few-shot table, then this question's row left open for the score."""
    truth = ground_truth.replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")
    return f"{official_prompt()}\n{question} | {truth} | {prediction} |"


def parse(reply: str) -> float | None:
    """The grade in a reply, as lmms-eval reads it: the first space-separated word, a float in [0, 1]."""
    try:
        value = float(reply.strip().split(" ")[0].strip())
    except ValueError:
        return None
    return value if 0.0 <= value <= 1.0 else None
