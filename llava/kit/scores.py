"""Scores for the easy-vqa mixture's tasks, and the blind (question-only) baselines beside them.

Scores, in percent: `vqa` exact match per question kind (colour / shape / yes-no), `vqa_hex` exact match of the
colour code, `caption` exact match of the sentence (case and final period ignored), `vqg` the generated question is
one of the vqg templates, names the image's true attribute, and asks for the given answer; `pairs` MME's acc and
acc+ (both questions of an image right) by the project's MME scorer, over its `color` and `existence` subtasks.

Blind baseline: a model that sees the task and the question text but not the image answers with the most frequent
training answer of that task for the same text (case-insensitive); a text never seen in training gets the task's
most frequent answer among questions of the same kind. On `pairs` the blind model answers the same way from the
`vqa` task's yes/no questions.
"""

from __future__ import annotations

import collections
import json
import os
import tempfile

from llava.eval.benchmarks import mme
from llava.eval.jsonl import read_jsonl, write_jsonl
from llava.kit.easy_vqa_attributes import Attributes
from llava.kit.easy_vqa_mixture import question_kind, vqg_answers


def _norm(text: str) -> str:
    return " ".join(text.strip().lower().rstrip(".").split())


def _question(text: str) -> str:
    return _norm(text.replace("<image>", ""))


def task_outcomes(task: str, rows: list[dict], replies: dict) -> dict[str, dict[str, bool]]:
    """{metric: {question_id: right}} for one task's eval rows (llava.kit.easy_vqa_mixture) and {question_id: reply};
    `vqa`'s metrics are its question kinds (color, shape, yesno), every other task's its name."""
    right: dict[str, dict[str, bool]] = collections.defaultdict(dict)
    for row in rows:
        reply = replies[row["question_id"]]
        if task == "vqg":
            ok = vqg_answers(reply, Attributes(row["shape"], row["color"])) == row[row["category"]]
        else:
            ok = _norm(reply) == _norm(row["answer"])
        right[row["category"] if task == "vqa" else task][row["question_id"]] = ok
    return dict(sorted(right.items()))


def percent(outcomes: dict[str, bool]) -> float:
    return round(100.0 * sum(outcomes.values()) / len(outcomes), 2)


def score_task(task: str, rows: list[dict], replies: dict) -> dict[str, float]:
    """{metric: percent} for one task's eval rows and {question_id: reply}."""
    return {k: percent(v) for k, v in task_outcomes(task, rows, replies).items()}


def _units(root: str) -> list[tuple[str, dict]]:
    """(unit id, MME item) per question of the paired benchmark. MME's ids (LLaVA's) name the image, shared by both
    of its questions; the kit's tests pair questions across schemes, so each gets a unit id of its own: the image id
    and the question's place in its image ("#0", "#1")."""
    seen: collections.Counter = collections.Counter()
    units = []
    for item in mme.load(root):
        units.append((f"{item['question_id']}#{seen[item['question_id']]}", item))
        seen[item["question_id"]] += 1
    return units


def pair_outcomes(root: str, replies: dict) -> dict[str, dict[str, bool]]:
    """{"acc": {unit: right}, "acc_plus": {image: both right}} by the project's MME scorer's parse. Both
    subtasks hold as many images, so the mean over all units equals MME's mean of the two subtasks' scores."""
    units = _units(root)
    right_by_key = mme.outcomes([item for _, item in units], {mme.key(item): replies[u] for u, item in units})
    right = {u: right_by_key[mme.key(item)] for u, item in units}
    images: dict[str, list[bool]] = collections.defaultdict(list)
    for u, item in units:
        images[item["image"]].append(right[u])
    return {"acc": right, "acc_plus": {image: all(v) for image, v in images.items()}}


def score_pairs(root: str, replies: dict) -> dict[str, float]:
    """MME acc and acc+ (mean over the `color` and `existence` subtasks) for {unit: reply}."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "answers.jsonl")
        write_jsonl(({"question_id": q["question_id"].rsplit("#", 1)[0], "prompt": q["text"], "text": replies[q["question_id"]]}
                     for q in pair_questions(root)), path)
        metrics = mme.score(root, path)
    subtasks = metrics["subtasks"]
    out = {"acc": round(sum(s["acc"] for s in subtasks.values()) / len(subtasks), 2),
           "acc_plus": round(sum(s["acc_plus"] for s in subtasks.values()) / len(subtasks), 2)}
    for name, s in subtasks.items():
        out[f"{name}_acc"], out[f"{name}_acc_plus"] = s["acc"], s["acc_plus"]
    return out


def pair_questions(root: str) -> list[dict]:
    """The paired benchmark as generation questions (MME's converter: question + short-answer instruction), each
    under its unit id."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "q.jsonl")
        mme.convert(root, path)
        rows = list(read_jsonl(path))
    return [{**row, "question_id": unit} for row, (unit, _) in zip(rows, _units(root))]


class BlindBaseline:
    """Most frequent training answer per (task, question text); per (task, kind) when the text is new."""

    def __init__(self, train_files: dict[str, str]):
        self.by_text: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
        self.by_kind: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
        for task, path in train_files.items():
            with open(path) as f:
                for sample in json.load(f):
                    turns = sample["conversations"]
                    for human, gpt in zip(turns[0::2], turns[1::2]):  # every exchange of a multi-turn sample
                        question, answer = human["value"], gpt["value"]
                        self.by_text[task, _question(question)][answer] += 1
                        self.by_kind[task, question_kind(question, answer)][answer] += 1

    def answer(self, task: str, question: str, kind: str) -> str:
        seen = self.by_text.get((task, _question(question)))
        counts = seen if seen else self.by_kind[task, kind]
        return counts.most_common(1)[0][0] if counts else ""

    def replies(self, task: str, rows: list[dict]) -> dict:
        return {r["question_id"]: self.answer(task, r["text"], r["category"]) for r in rows}

    def pair_replies(self, questions: list[dict]) -> dict:
        return {q["question_id"]: self.answer("vqa", q["text"], "yesno") for q in questions}
