"""Table 2's training set: LLaVA-Instruct-150K's `conversation_58k.json` (multi-turn conversations about COCO
images) with each record's image found locally under either COCO naming."""

from __future__ import annotations

import os

from llava.data.recipes.images import CocoImages, LocalImages, coco_id
from llava.data.recipes.output import Built, RecipeError, read_json

TASK = "conversation"


def build(raw: str, limit: int | None = None) -> Built:
    path = os.path.join(raw, "instruct", "conversation_58k.json")
    rows = read_json(path, "LLaVA-Instruct-150K's conversation_58k.json (put it under RAW/instruct/)")
    if not isinstance(rows, list):
        raise RecipeError(f"{path}: expected a JSON list of conversations")
    coco = CocoImages(LocalImages(raw))
    built = Built(inputs=[path])
    for i, row in enumerate(rows[:limit] if limit else rows):
        if not isinstance(row, dict) or "image" not in row or "conversations" not in row:
            raise RecipeError(f"{path}: record {i} has no 'image' or 'conversations'")
        try:
            image_id = coco_id(row["image"])
        except ValueError as e:
            raise RecipeError(f"{path}: record {i} (id {row.get('id')}): {e}") from e
        image = coco.locate(image_id)
        if image is None:
            built.missing("llava_conversation", f"COCO image {image_id} ({row['image']})")
            continue
        built.keep({"id": str(row.get("id", image_id)), "image": image, "conversations": row["conversations"],
                    "task": TASK, "source": "llava_conversation"})
    built.details["coco images found in"] = dict(coco.found)  # which naming: train2017/<id>.jpg or COCO_train2014_
    return built
