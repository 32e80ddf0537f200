"""VQAv2's official train files -> LLaVA-1.5-style short-answer conversations, one per image.

The questions JSON (`v2_OpenEnded_mscoco_train2014_questions.json`) and the annotations JSON
(`v2_mscoco_train2014_annotations.json`) are joined on question_id; the answer is `multiple_choice_answer` (VQA's
consensus answer, what LLaVA-1.5 trains on). As LLaVA-1.5 does, all questions of one image become one conversation,
each question followed by the short-answer prompt, the image tag on the first.
"""

from __future__ import annotations

import os

from llava.constants import SHORT_ANSWER
from llava.data.recipes.images import CocoImages
from llava.data.recipes.output import Built, RecipeError, read_json

QUESTIONS = "v2_OpenEnded_mscoco_train2014_questions.json"
ANNOTATIONS = "v2_mscoco_train2014_annotations.json"


def conversation(questions: list[tuple[str, str]]) -> list[dict]:
    turns = []
    for k, (question, answer) in enumerate(questions):
        head = "<image>\n" if k == 0 else ""
        turns += [{"from": "human", "value": f"{head}{question.strip()}\n{SHORT_ANSWER}"},
                  {"from": "gpt", "value": answer}]
    return turns


def by_image(raw: str, built: Built) -> dict[int, list[tuple[str, str]]]:
    """image id -> [(question, answer)] in question_id order."""
    q_path = os.path.join(raw, "vqav2", QUESTIONS)
    a_path = os.path.join(raw, "vqav2", ANNOTATIONS)
    questions = read_json(q_path, f"VQAv2's {QUESTIONS} (put it under RAW/vqav2/)")
    annotations = read_json(a_path, f"VQAv2's {ANNOTATIONS} (put it under RAW/vqav2/)")
    built.inputs += [q_path, a_path]
    try:
        answers = {a["question_id"]: a["multiple_choice_answer"] for a in annotations["annotations"]}
        rows = sorted(questions["questions"], key=lambda q: q["question_id"])
    except (KeyError, TypeError) as e:
        raise RecipeError(f"{q_path} / {a_path}: not VQAv2's official layout (missing {e})") from e
    out: dict[int, list[tuple[str, str]]] = {}
    for q in rows:
        if q["question_id"] not in answers:
            raise RecipeError(f"{a_path}: no annotation for question {q['question_id']} of {q_path}")
        out.setdefault(int(q["image_id"]), []).append((q["question"], answers[q["question_id"]]))
    return out


def records(raw: str, coco: CocoImages, built: Built, pick) -> list[dict]:
    """The VQA task's records; `pick(list)` chooses which images (a seeded sample or all)."""
    grouped = by_image(raw, built)
    out = []
    for image_id in pick(sorted(grouped)):
        image = coco.locate(image_id)
        if image is None:
            built.missing("vqav2", f"COCO image {image_id}")
            continue
        out.append({"id": f"vqav2-{image_id}", "image": image, "conversations": conversation(grouped[image_id]),
                    "task": "vqa", "source": "vqav2"})
    return out
