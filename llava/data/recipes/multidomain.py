"""Table 4's training set, the paper's multi-domain mixture: VQA (VQAv2) and Gen (LLaVA-15k + VQG), as tasks
`vqa`, `llava`, `vqg`.

"LLaVA-15k" is not defined by the paper. Our reading: a seeded sample of 15,000 records of LLaVA-Instruct-150K's
`llava_instruct_150k.json` (`--llava-ids FILE` takes the ids from a file instead, a JSON list of ids or of records).
The sample is drawn from the whole file before images are looked up, so the same seed gives the same ids on every
machine; records whose image is absent are then counted and left out. Sizes of the other two are configurable too
(default: all of VQAv2's train images, every VQG question).
"""

from __future__ import annotations

import os
import random

from llava.data.recipes import vqav2, vqg
from llava.data.recipes.images import CocoImages, LocalImages, coco_id
from llava.data.recipes.output import Built, RecipeError, read_json

LLAVA_15K = 15_000


def sampler(n: int | None, rng: random.Random):
    """A function choosing n items (in their original order) with `rng`, or all when n is None."""
    def pick(items: list) -> list:
        if n is None or n >= len(items):
            return list(items)
        return [items[i] for i in sorted(rng.sample(range(len(items)), n))]
    return pick


def llava_records(raw: str, coco: CocoImages, built: Built, n: int, ids_file: str | None, rng) -> list[dict]:
    path = os.path.join(raw, "instruct", "llava_instruct_150k.json")
    rows = read_json(path, "LLaVA-Instruct-150K's llava_instruct_150k.json (put it under RAW/instruct/)")
    built.inputs.append(path)
    if ids_file:
        chosen = read_json(ids_file, "--llava-ids file")
        wanted = {str(x["id"]) if isinstance(x, dict) else str(x) for x in chosen}
        rows = [r for r in rows if str(r.get("id")) in wanted]
        built.inputs.append(ids_file)
        unknown = len(wanted) - len({str(r.get("id")) for r in rows})
        if unknown:
            raise RecipeError(f"{ids_file}: {unknown} of its ids are not in {path}")
    else:
        rows = sampler(n, rng)(rows)
    out = []
    for i, row in enumerate(rows):
        try:
            image_id = coco_id(row["image"])
        except (KeyError, ValueError) as e:
            raise RecipeError(f"{path}: record {row.get('id', i)} has no COCO image name ({e})") from e
        image = coco.locate(image_id)
        if image is None:
            built.missing("llava_instruct", f"COCO image {image_id} ({row['image']})")
            continue
        out.append({"id": f"llava-{row.get('id', i)}", "image": image, "conversations": row["conversations"],
                    "task": "llava", "source": "llava_instruct"})
    return out


def build(raw: str, seed: int = 0, vqa: int | None = None, llava: int = LLAVA_15K, llava_ids: str | None = None,
          vqg_max: int | None = None, vqg_splits: list[str] | None = None, vqg_prompt: str = vqg.PROMPT) -> Built:
    coco = CocoImages(LocalImages(raw))
    built = Built()
    # one random stream per part, so changing one part's size leaves the others' samples as they were
    built.records += vqav2.records(raw, coco, built, sampler(vqa, random.Random(f"{seed}/vqa")))
    built.records += llava_records(raw, coco, built, llava, llava_ids, random.Random(f"{seed}/llava"))
    questions = vqg.records(raw, coco, built, vqg_splits, vqg_prompt)
    built.records += sampler(vqg_max, random.Random(f"{seed}/vqg"))(questions)
    built.details["coco images found in"] = dict(coco.found)
    return built
