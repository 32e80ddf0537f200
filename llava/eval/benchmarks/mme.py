"""MME: yes/no questions, two per image, 10 perception + 4 cognition subtasks.

Layout (playground/data/eval/MME/MME_Benchmark_release_version/<subtask>/): either `images/` + `questions_answers_YN/`
or image files next to same-named .txt files; each .txt line is `question<TAB>Yes|No`.
Prompts are LLaVA-1.5's (its `llava_mme.jsonl`, and lmms-eval's MME task): MME's own " Please answer yes or no."
(after one space or two) gives way to the short-answer instruction. Ids are LLaVA's: the image path under
MME_Benchmark_release_version, shared by both questions of an image, so answers are keyed by (id, question).
Score per subtask = acc + acc+ (both questions of an image right), in percent; perception = sum of its 10 subtasks
(max 2000), cognition = sum of its 4 (max 800). Replies parse as the official calculation: "yes"/"no" as the whole
(first-word) reply, else look for "yes" then "no" in the first 4 characters, else "other" (always wrong).
"""

from __future__ import annotations

import os
import re

from llava.eval.benchmarks.common import (
    SHORT_ANSWER,
    missing_answers,
    pct,
    question_in_prompt,
    question_row,
    read_answer_rows,
    read_answers,
    require,
    write_questions,
)

PERCEPTION = ["existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR"]
COGNITION = ["commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning"]
IMAGE_EXT = (".png", ".jpg", ".jpeg")
YES_NO = "Please answer yes or no."


def llava_question(question: str) -> str:
    """MME's question without its yes/no sentence, as LLaVA asks it."""
    question = question.strip()
    if question.endswith(YES_NO):
        question = question[: -len(YES_NO)].rstrip()
    return question


def bench_dir(root: str) -> str:
    return require(os.path.join(root, "MME", "MME_Benchmark_release_version"), "MME benchmark")


def _pairs(subtask_dir: str):
    """(image path relative to the subtask dir, txt path) for both official layouts."""
    if os.path.isdir(os.path.join(subtask_dir, "questions_answers_YN")):
        qa_dir = os.path.join(subtask_dir, "questions_answers_YN")
        for txt in sorted(os.listdir(qa_dir)):
            stem = os.path.splitext(txt)[0]
            image = next((f"images/{stem}{e}" for e in IMAGE_EXT
                          if os.path.exists(os.path.join(subtask_dir, "images", stem + e))), None)
            if image is None:
                raise FileNotFoundError(f"{qa_dir}/{txt}: no image images/{stem}.(png|jpg)")
            yield image, os.path.join(qa_dir, txt)
    else:
        for name in sorted(os.listdir(subtask_dir)):
            stem, ext = os.path.splitext(name)
            if ext.lower() in IMAGE_EXT:
                txt = os.path.join(subtask_dir, stem + ".txt")
                if not os.path.exists(txt):
                    raise FileNotFoundError(f"{subtask_dir}/{name}: no question file {stem}.txt")
                yield name, txt


def load(root: str) -> list[dict]:
    base = bench_dir(root)
    items = []
    for subtask in sorted(os.listdir(base)):
        sub_dir = os.path.join(base, subtask)
        if not os.path.isdir(sub_dir):
            continue
        for image, txt in _pairs(sub_dir):
            with open(txt, encoding="utf-8") as f:
                lines = [line.rstrip("\n") for line in f if line.strip()]
            for i, line in enumerate(lines):
                if "\t" not in line:
                    raise ValueError(f"{txt}: line {i + 1} is not 'question<TAB>answer'")
                question, answer = line.split("\t", 1)
                items.append({"question_id": f"{subtask}/{image}", "subtask": subtask,
                              "image": f"{subtask}/{image}", "question": llava_question(question),
                              "mme_question": question.strip(), "answer": answer.strip().lower(),
                              "mme_answer": answer.strip()})
    if not items:
        raise FileNotFoundError(f"{base}: no MME subtask folders with questions")
    return items


def convert(root: str, out: str) -> int:
    return write_questions((question_row(it["question_id"], it["image"], f"{it['question']}\n{SHORT_ANSWER}",
                                         it["subtask"]) for it in load(root)), out)


def key(item: dict) -> tuple[str, str]:
    return item["question_id"], item["question"]


def answer_key(row: dict) -> tuple[str, str]:
    return str(row["question_id"]), question_in_prompt(row["prompt"])


def eval_tool(root: str, answers_file: str, out_dir: str) -> int:
    """MME's eval_tool input, as LLaVA's convert_answer_to_mme.py writes it: <out_dir>/<subtask>.txt, a line per
    answer "<image stem>.txt<TAB>MME's question<TAB>Yes|No<TAB>reply", in the answers file's order (tabs and line
    breaks in a reply become spaces: one line per answer)."""
    by_key = {key(it): it for it in load(root)}
    per_subtask: dict[str, list[str]] = {}
    for row in read_answer_rows(answers_file):
        k = answer_key(row)
        if k not in by_key:
            raise ValueError(f"{answers_file}: answer to {k} matches no MME question under {bench_dir(root)}")
        it = by_key[k]
        stem = os.path.splitext(os.path.basename(it["image"]))[0]
        reply = " ".join(row["text"].replace("\t", " ").splitlines())
        per_subtask.setdefault(it["subtask"], []).append(
            "\t".join([f"{stem}.txt", it["mme_question"], it["mme_answer"], reply]))
    os.makedirs(out_dir, exist_ok=True)
    for subtask, lines in per_subtask.items():
        with open(os.path.join(out_dir, f"{subtask}.txt"), "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
    return sum(len(v) for v in per_subtask.values())


def parse_yes_no(reply: str) -> str:
    text = reply.strip().lower()
    first = re.split(r"[\s,.!;:]+", text, maxsplit=1)[0] if text else ""
    if first in ("yes", "no"):
        return first
    head = text[:4]
    if "yes" in head:
        return "yes"
    if "no" in head:
        return "no"
    return "other"


def outcomes(items: list[dict], answers: dict) -> dict[str, bool]:
    """{question_id: right} by the official parse; every item must have an answer."""
    missing_answers([key(it) for it in items], answers, "MME")
    return {key(it): parse_yes_no(answers[key(it)]) == it["answer"] for it in items}


def score(root: str, answers_file: str) -> dict:
    items = load(root)
    right_by_id = outcomes(items, read_answers(answers_file, answer_key))
    per_subtask: dict[str, dict] = {}
    for it in items:
        right = right_by_id[key(it)]
        sub = per_subtask.setdefault(it["subtask"], {"correct": [], "images": {}})
        sub["correct"].append(right)
        sub["images"].setdefault(it["image"], []).append(right)
    subtasks = {}
    for name, sub in sorted(per_subtask.items()):
        acc = sum(sub["correct"]) / len(sub["correct"])
        acc_plus = sum(all(v) for v in sub["images"].values()) / len(sub["images"])
        subtasks[name] = {"acc": pct(acc), "acc_plus": pct(acc_plus), "score": round(pct(acc) + pct(acc_plus), 2),
                          "questions": len(sub["correct"])}
    perception = round(sum(v["score"] for k, v in subtasks.items() if k in PERCEPTION), 2)
    cognition = round(sum(v["score"] for k, v in subtasks.items() if k in COGNITION), 2)
    return {"benchmark": "mme", "perception": perception, "cognition": cognition, "subtasks": subtasks,
            "perception_subtasks_present": [k for k in PERCEPTION if k in subtasks],
            "cognition_subtasks_present": [k for k in COGNITION if k in subtasks]}


def markdown(metrics: dict) -> str:
    lines = ["| subtask | acc | acc+ | score |", "|---|---|---|---|"]
    for name, v in metrics["subtasks"].items():
        lines.append(f"| {name} | {v['acc']:.2f} | {v['acc_plus']:.2f} | {v['score']:.2f} |")
    lines.append(f"| **Perception** ({len(metrics['perception_subtasks_present'])}/10 subtasks) | | | "
                 f"**{metrics['perception']:.2f}** |")
    lines.append(f"| **Cognition** ({len(metrics['cognition_subtasks_present'])}/4 subtasks) | | | "
                 f"**{metrics['cognition']:.2f}** |")
    return "\n".join(lines)
