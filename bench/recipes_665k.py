"""Labelling a 665k-record llava_v1_5_mix665k.json by source (llava/data/recipes/mix665k.py).

python bench/recipes_665k.py [--scale 1.0] [--keep DIR]

Writes synthetic records in the released file's published per-source counts, each in its source's shape (image
folder, format prompt, questions per record; text-only ShareGPT with a `model` field), and an empty file for every
image, so the image lookups are those of a complete download. Then times, in this process: reading the JSON, the
labeller alone (`source_of` over every record), and the recipe's whole build (read + label + image lookups +
task assignment). Checks that every planted source is found exactly.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from llava.constants import OPTION_LETTER, SHORT_ANSWER  # noqa: E402
from llava.data.recipes import mix665k  # noqa: E402

WORDS = "the a of image man dog red blue car street table two people sitting near left right".split()


def text(rng, lo, hi):
    return " ".join(rng.choices(WORDS, k=rng.randint(lo, hi)))


def record(source: str, i: int, rng: random.Random) -> dict:
    def turns(prompts):
        out = []
        for k, p in enumerate(prompts):
            out += [{"from": "human", "value": ("<image>\n" if k == 0 else "") + p},
                    {"from": "gpt", "value": text(rng, 1, 40)}]
        return out

    coco = f"coco/train2017/{i % 118_287:012d}.jpg"
    shapes = {
        "llava": (coco, [text(rng, 6, 20) + "?" for _ in range(rng.randint(1, 4))]),
        "vqav2": (coco, [f"{text(rng, 4, 9)}?\n{SHORT_ANSWER}" for _ in range(rng.randint(3, 8))]),
        "okvqa": (coco, [f"{text(rng, 4, 9)}?\n{SHORT_ANSWER}"]),
        "a-okvqa": (coco, [f"{text(rng, 4, 9)}?\nA. x\nB. y\nC. z\nD. w\n{OPTION_LETTER}"]),
        "refcoco": (coco, ["Please provide a short description for this region: [0.1, 0.2, 0.3, 0.4]",
                           "Please provide the bounding box coordinate of the region this sentence describes: a dog."]),
        "gqa": (f"gqa/images/{2_300_000 + i % 72_140}.jpg", [f"{text(rng, 4, 9)}?\n{SHORT_ANSWER}"] * 3),
        "ocr_vqa": (f"ocr_vqa/images/{i % 80_000:010d}.jpg", ["Who wrote this book?", f"Genre?\n{SHORT_ANSWER}"]),
        "textcaps": (f"textvqa/train_images/{i % 21_953:016x}.jpg",
                     ["Provide a one-sentence caption for the provided image."]),
        "vg": (f"vg/VG_100K{'_2' if i % 2 else ''}/{i % 86_417}.jpg",
               ["Please provide a short description for this region: [0.1, 0.1, 0.2, 0.2]"]),
    }
    if source == "sharegpt":
        return {"id": f"sg{i}", "model": "", "conversations": [{"from": "human", "value": text(rng, 5, 30)},
                                                                {"from": "gpt", "value": text(rng, 5, 60)}]}
    image, prompts = shapes[source]
    return {"id": i if source == "gqa" else f"{source}{i}", "image": image, "conversations": turns(prompts)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the published counts")
    ap.add_argument("--keep", default=None, help="write into this folder and keep it")
    args = ap.parse_args()
    root = args.keep or tempfile.mkdtemp(prefix="mix665k-bench-")
    counts = {s: round(n * args.scale) for s, n in mix665k.PUBLISHED.items()}
    rng = random.Random(0)
    rows = [record(s, i, rng) for s, n in counts.items() for i in range(n)]
    rng.shuffle(rows)
    images = {r["image"] for r in rows if "image" in r}
    start = time.perf_counter()
    for folder in {os.path.dirname(p) for p in images}:
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    for p in images:
        open(os.path.join(root, p), "w").close()
    path = os.path.join(root, "llava_v1_5_mix665k.json")
    with open(path, "w") as f:
        json.dump(rows, f)
    print(f"{len(rows):,} records, {len(images):,} image files, {os.path.getsize(path) / 1e6:.0f} MB JSON "
          f"(written in {time.perf_counter() - start:.1f} s)")
    del rows

    start = time.perf_counter()
    with open(path) as f:
        loaded = json.load(f)
    t_read = time.perf_counter() - start
    start = time.perf_counter()
    labels = [mix665k.source_of(r) for r in loaded]
    t_label = time.perf_counter() - start
    found = {s: labels.count(s) for s in mix665k.SOURCES}
    assert found == counts, (found, counts)
    del loaded, labels
    start = time.perf_counter()
    built = mix665k.build(root)
    t_build = time.perf_counter() - start
    assert len(built.records) == sum(counts.values()) and not built.absent
    print(f"read JSON {t_read:.1f} s; label every record {t_label:.1f} s; whole recipe build (read + label + "
          f"image lookups + tasks) {t_build:.1f} s; every source found exactly: {found == counts}")
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
