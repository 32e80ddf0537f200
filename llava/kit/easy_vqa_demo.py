"""Write a small LLaVA-format data set from the `easy-vqa` PyPI package (shape images + questions), offline.

Three tasks by question kind - shape, color, yes/no - so task routing and per-task reports have something to do.
python -m llava.kit.easy_vqa_demo --out playground/data/demo --train 1200 --test 60
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil

from llava.kit.easy_vqa_attributes import load_easy_vqa


def question_task(question: str, answer: str) -> str:
    if answer in ("yes", "no"):
        return "yesno"
    return "color" if "color" in question else "shape"


def build(out: str, n_train: int = 1200, n_test: int = 60, seed: int = 0) -> dict[str, str]:
    """Write <out>/images/, train_<task>.json per task, train.json (all) and test.jsonl; returns the paths."""
    ev = load_easy_vqa()
    rng = random.Random(seed)
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    splits = {}
    for split, questions, images in (("train", ev.get_train_questions(), ev.get_train_image_paths()),
                                     ("test", ev.get_test_questions(), ev.get_test_image_paths())):
        rows = list(zip(*questions))
        rng.shuffle(rows)
        splits[split] = (rows[: n_train if split == "train" else n_test], images)
    by_task: dict[str, list] = {}
    for i, (q, a, image_id) in enumerate(splits["train"][0]):
        rel = f"images/train_{image_id}.png"
        dst = os.path.join(out, rel)
        if not os.path.exists(dst):
            shutil.copyfile(splits["train"][1][image_id], dst)
        task = question_task(q, a)
        by_task.setdefault(task, []).append({
            "id": f"train-{i}", "image": rel, "task": task,
            "conversations": [{"from": "human", "value": f"<image>\n{q}\nAnswer the question using a single word."},
                              {"from": "gpt", "value": a}]})
    paths = {}
    everything = []
    for task, rows in sorted(by_task.items()):
        paths[task] = os.path.join(out, f"train_{task}.json")
        with open(paths[task], "w") as f:
            json.dump(rows, f)
        everything.extend(rows)
    paths["train"] = os.path.join(out, "train.json")
    with open(paths["train"], "w") as f:
        json.dump(everything, f)
    paths["test"] = os.path.join(out, "test.jsonl")
    with open(paths["test"], "w") as f:
        for i, (q, a, image_id) in enumerate(splits["test"][0]):
            rel = f"images/test_{image_id}.png"
            dst = os.path.join(out, rel)
            if not os.path.exists(dst):
                shutil.copyfile(splits["test"][1][image_id], dst)
            f.write(json.dumps({"question_id": f"test-{i}", "image": rel, "answer": a,
                                "text": f"{q}\nAnswer the question using a single word.",
                                "category": question_task(q, a)}) + "\n")
    return paths


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="playground/data/demo")
    ap.add_argument("--train", type=int, default=1200)
    ap.add_argument("--test", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    paths = build(args.out, args.train, args.test, args.seed)
    print(json.dumps(paths, indent=2))


if __name__ == "__main__":
    main()
