"""Pre-flight data check at LLaVA-1.5 mix665k scale: 665,000 synthetic LLaVA records (1-3 rounds, 90% with an
image drawn from 5,000 small PNGs), the tiny preset's tokenizer, 2 worker processes.

`python bench/preflight_665k.py [--records 665000] [--workers 2] [--root /tmp/preflight665k]` prints the seconds to
read the records, to check them the first time, and to re-check them (cache hit).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time

from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from llava.data.dataset import SupervisedDataset  # noqa: E402
from llava.data.preflight import preflight  # noqa: E402
from llava.model.tiny import build_tiny_tokenizer  # noqa: E402

QUESTIONS = ["What is the color of the shape?", "Describe the image briefly.", "How many objects are there?",
             "Is there a circle in the image?", "What shape is in the image?"]
ANSWERS = ["red", "A small blue circle on a white background.", "2", "yes", "no", "rectangle", "three"]


def generate(root: str, n: int, images: int) -> str:
    path = os.path.join(root, "mix.jsonl")
    if os.path.exists(path):
        return path
    os.makedirs(os.path.join(root, "img"), exist_ok=True)
    for k in range(images):
        Image.new("RGB", (32 + k % 17, 32 + k % 13), (k % 255, 80, 160)).save(os.path.join(root, "img", f"{k}.png"))
    rng = random.Random(0)
    with open(path, "w") as f:
        for i in range(n):
            rounds = [(rng.choice(QUESTIONS), rng.choice(ANSWERS)) for _ in range(rng.randint(1, 3))]
            convs = []
            for q, a in rounds:
                convs += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
            row = {"id": f"s{i}", "conversations": convs}
            if rng.random() < 0.9:
                row["image"] = f"img/{rng.randrange(images)}.png"
                convs[0]["value"] = "<image>\n" + convs[0]["value"]
            f.write(json.dumps(row) + "\n")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=665_000)
    ap.add_argument("--images", type=int, default=5_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "preflight665k"))
    args = ap.parse_args()
    os.environ.setdefault("LLAVA_ASYMLORA_CACHE", os.path.join(args.root, "cache"))
    path = generate(args.root, args.records, args.images)
    t0 = time.perf_counter()
    ds = SupervisedDataset(path, build_tiny_tokenizer(), image_folder=args.root, template="v1", image_seq_length=16,
                           model_max_length=2048)
    t1 = time.perf_counter()
    bad = preflight(ds, workers=args.workers, show_progress=False)
    t2 = time.perf_counter()
    again = preflight(ds, workers=args.workers, show_progress=False)
    t3 = time.perf_counter()
    print(json.dumps({"records": len(ds), "bad": len(bad), "bad_again": len(again), "workers": args.workers,
                      "read_s": round(t1 - t0, 1), "check_s": round(t2 - t1, 1), "cached_s": round(t3 - t2, 2)}))


if __name__ == "__main__":
    main()
