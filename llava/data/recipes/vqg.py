"""VQG (Mostafazadeh et al. 2016) -> question-generation conversations on COCO images.

VQG's COCO part ships as `coco_{train,val,test}_all.csv` with columns image_id, image_url, questions, ratings;
`questions` holds the crowd's questions about the image joined by "---". Every question becomes one record: the user
asks for a question about the image, the assistant replies with that question. Rows whose image is not on disk are
counted (per row) and reported, never silently dropped.
"""

from __future__ import annotations

import csv
import glob
import os

from llava.data.recipes.images import CocoImages
from llava.data.recipes.output import Built, RecipeError

PROMPT = "Ask a natural question that a person looking at this image might ask."


def csv_files(raw: str, splits: list[str] | None) -> list[str]:
    folder = os.path.join(raw, "vqg")
    if splits:
        paths = [os.path.join(folder, f"coco_{s}_all.csv") for s in splits]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise RecipeError(f"VQG file not found: {missing[0]}")
        return paths
    paths = sorted(glob.glob(os.path.join(folder, "coco_*_all.csv")))
    if not paths:
        raise RecipeError(f"no VQG coco_*_all.csv under {folder} (put VQG's CSV files there)")
    return paths


def questions(path: str) -> list[tuple[int, list[str]]]:
    """(image id, questions) per row of one CSV."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"image_id", "questions"} <= set(reader.fieldnames):
            raise RecipeError(f"{path}: expected VQG's columns image_id,image_url,questions,ratings; "
                              f"got {reader.fieldnames}")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                image_id = int(row["image_id"])
            except (TypeError, ValueError) as e:
                raise RecipeError(f"{path}: line {line}: image_id {row['image_id']!r} is not a number") from e
            asked = [q.strip() for q in (row["questions"] or "").split("---") if q.strip()]
            rows.append((image_id, asked))
        return rows


def records(raw: str, coco: CocoImages, built: Built, splits: list[str] | None, prompt: str = PROMPT) -> list[dict]:
    out = []
    for path in csv_files(raw, splits):
        built.inputs.append(path)
        split = os.path.basename(path)[len("coco_"):-len("_all.csv")]
        for image_id, asked in questions(path):
            image = coco.locate(image_id)
            if image is None:
                built.missing("vqg", f"COCO image {image_id} ({os.path.basename(path)})")
                continue
            for k, question in enumerate(asked):
                out.append({"id": f"vqg-{split}-{image_id}-{k}", "image": image, "task": "vqg", "source": "vqg",
                            "conversations": [{"from": "human", "value": f"<image>\n{prompt}"},
                                              {"from": "gpt", "value": question}]})
    return out
