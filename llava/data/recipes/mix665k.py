"""Table 3's training set: LLaVA-1.5's `llava_v1_5_mix665k.json`, every record labelled by the data set it came from.

The file carries no source field; the source is recoverable from the record (facts from LLaVA's repository, paper
appendix and maintainer comments):
  * no `image` key                                  -> ShareGPT (text-only)
  * image under gqa/images, ocr_vqa/images, vg/     -> GQA, OCR-VQA, Visual Genome
  * image under textvqa/train_images                -> TextCaps (captions on TextVQA's images, not TextVQA)
  * image under coco/, by the first human turn's response-format prompt:
      "Answer with the option's letter from the given choices directly."   -> A-OKVQA
      "...short description for this region..." / "...bounding box coordinate of the region..." -> RefCOCO
      "Answer the question using a single word or phrase."  -> VQAv2 or OK-VQA: one record per image, all its
          questions merged; VQAv2's train images carry 3 or more questions each, OK-VQA's almost always one, so a
          one-question record is OK-VQA (OK-VQA's few two-question images are counted as VQAv2)
      none of these                                                          -> LLaVA-Instruct
"""

from __future__ import annotations

import os

from llava.constants import OPTION_LETTER, SHORT_ANSWER
from llava.data.recipes.images import LocalImages
from llava.data.recipes.output import Built, RecipeError, read_json

# The released file's per-source counts (LLaVA issue #702, the maintainer's recount; sum 665,298).
PUBLISHED = {"llava": 157_712, "sharegpt": 40_688, "vqav2": 82_783, "gqa": 72_140, "okvqa": 8_998,
             "ocr_vqa": 80_000, "a-okvqa": 66_160, "textcaps": 21_953, "refcoco": 48_447, "vg": 86_417}
SOURCES = tuple(PUBLISHED)
FOLDERS = {"gqa": "gqa", "ocr_vqa": "ocr_vqa", "textvqa": "textcaps", "vg": "vg"}
REGION_PROMPTS = ("short description for this region", "bounding box coordinate of the region")


def source_of(record: dict) -> str:
    """The source data set of one mix665k record (module docstring); ValueError for a shape none has."""
    image = record.get("image")
    if image is None:
        return "sharegpt"
    folder = str(image).split("/", 1)[0]
    if folder != "coco":
        if folder not in FOLDERS:
            raise ValueError(f"image {image!r} is in no folder of the mixture (coco, gqa, ocr_vqa, textvqa, vg)")
        return FOLDERS[folder]
    turns = record.get("conversations") or []
    first = turns[0].get("value", "") if turns and isinstance(turns[0], dict) else ""
    if OPTION_LETTER in first:
        return "a-okvqa"
    if any(p in first for p in REGION_PROMPTS):
        return "refcoco"
    if SHORT_ANSWER in first:
        questions = sum(1 for t in turns[::2] if isinstance(t, dict))
        return "okvqa" if questions == 1 else "vqav2"
    return "llava"


def parse_groups(spec: str | None) -> dict[str, str]:
    """'vqa=vqav2,gqa gen=llava,sharegpt' -> {source: task}; None -> every source its own task."""
    if not spec:
        return {s: s for s in SOURCES}
    mapping: dict[str, str] = {}
    for group in spec.split():
        if "=" not in group:
            raise RecipeError(f"--tasks: {group!r} is not TASK=SOURCE,SOURCE (sources: {', '.join(SOURCES)})")
        task, members = group.split("=", 1)
        for source in filter(None, (m.strip() for m in members.split(","))):
            if source not in SOURCES:
                raise RecipeError(f"--tasks: unknown source {source!r} (sources: {', '.join(SOURCES)})")
            if source in mapping:
                raise RecipeError(f"--tasks: source {source!r} is in two tasks ({mapping[source]}, {task})")
            mapping[source] = task
    return mapping


def build(raw: str, json_path: str | None = None, tasks: str | None = None, drop: tuple[str, ...] = ()) -> Built:
    path = json_path or os.path.join(raw, "llava_v1_5_mix665k.json")
    rows = read_json(path, "llava_v1_5_mix665k.json (LLaVA's playground/data layout: the JSON beside coco/, gqa/, ...)")
    if not isinstance(rows, list):
        raise RecipeError(f"{path}: expected a JSON list of records")
    groups = parse_groups(tasks)
    unknown = [s for s in drop if s not in SOURCES]
    if unknown:
        raise RecipeError(f"--drop: unknown sources {unknown} (sources: {', '.join(SOURCES)})")
    unassigned = [s for s in SOURCES if s not in groups and s not in drop]
    if unassigned:
        raise RecipeError(f"--tasks assigns no task to {', '.join(unassigned)}: add them to a group or --drop them")
    images = LocalImages(raw)
    built = Built(inputs=[path])
    found = dict.fromkeys(SOURCES, 0)
    dropped = dict.fromkeys(drop, 0)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise RecipeError(f"{path}: record {i} is not a JSON object")
        try:
            source = source_of(row)
        except ValueError as e:
            raise RecipeError(f"{path}: record {i} (id {row.get('id')}): {e}") from e
        found[source] += 1
        if source in dropped:
            dropped[source] += 1
            continue
        if "image" in row and not images.exists(row["image"]):
            built.missing(source, row["image"])
            continue
        built.keep({**row, "id": str(row.get("id", i)), "task": groups[source], "source": source})
    built.details["labelled by source"] = found
    built.details["published counts"] = PUBLISHED
    if dropped:
        built.details["dropped by --drop"] = dropped
    return built
