"""What scripts/finetune.sh defaults to for a MODEL directory, by the family its config.json names: whether the
directory brings its own vision tower and projector, and a model_max_length that a sample with a large image fits in.

A family's image tokens vary with its processor (tiles, splits, dynamic resolution), and a sample whose image tokens
do not fit stops the run (an image is never cut), so the default is each family's worst case for one image at its
processor's released settings, with room for the conversation, rounded up to a power of two. Read from config.json
alone, without torch: the script asks before every run.
Usage: python -m llava.model.family_defaults MODEL_DIR  ->  "<own tower 0|1> <max length>"
"""

from __future__ import annotations

import json
import os
import sys
from typing import NamedTuple

LLAVA_MAX_LENGTH = 2048  # LLaVA-1.5's recipe: 576 image tokens


class Family(NamedTuple):
    max_length: int
    image_tokens: str  # what one large image takes at the released processor's settings


FAMILIES = {  # model_type -> defaults
    "llava": Family(2048, "576 tokens: 24 x 24 patches of a 336-pixel image"),
    "llava_next": Family(4096, "up to 2,928 tokens: the 336-pixel base image (576) and a 2 x 2 grid of tiles (48 x 48, "
                               "a newline per row); a 640 x 480 photo takes 2,340"),
    "llava_onevision": Family(8192, "up to about 7,400 tokens: the 384-pixel base image (729) and at most 9 crops' "
                                    "worth of features (anyres_max_9), a newline per row"),
    "qwen2_5_vl": Family(4096, "one token per 28 x 28 pixels at the image's own size: 1,296 for a 1,008-pixel square; "
                               "an image over about 1,700 x 1,700 does not fit (raise MAX_LEN)"),
    "qwen3_vl": Family(4096, "one token per 32 x 32 pixels at the image's own size: 961 for a 992-pixel square; an "
                             "image over about 1,900 x 1,900 does not fit (raise MAX_LEN)"),
    "idefics3": Family(4096, "up to 2,873 tokens: 4 x 4 splits of 364 pixels and the whole image, 169 each"),
    "smolvlm": Family(2048, "up to 1,377 tokens: 4 x 4 splits and the whole image, 64 (SmolVLM-256M/500M) or 81 "
                            "(2.2B) each"),
    "gemma3": Family(2048, "256 tokens: a 896-pixel image pooled to 16 x 16"),
    "internvl": Family(4096, "up to 3,328 tokens: 12 tiles of 448 pixels and a thumbnail, 256 each"),
}


def defaults(model_dir: str) -> tuple[bool, int]:
    """(the directory holds its own vision tower and projector, the model_max_length to default to)."""
    path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(path):  # a .gguf file, a preset name, a directory the script reports as missing
        return False, LLAVA_MAX_LENGTH
    with open(path) as f:
        try:
            config = json.load(f)
        except json.JSONDecodeError as e:
            raise SystemExit(f"error: {path} is not a model config (not JSON: {e})") from None
    own_tower = "vision_config" in config
    family = FAMILIES.get(config.get("model_type", ""))
    return own_tower, family.max_length if family else LLAVA_MAX_LENGTH


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m llava.model.family_defaults MODEL_DIR")
    own_tower, length = defaults(argv[0])
    print(int(own_tower), length)


if __name__ == "__main__":
    main()
