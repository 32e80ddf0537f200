"""llava_base.json: how to rebuild a checkpoint's frozen base (its source, vision tower, projector, seed, template,
image handling, tasks, bits). Loading a whole checkpoint (base + adapters) is llava.adapters.checkpoint's."""

from __future__ import annotations

import json
import os

BASE_NAME = "llava_base.json"


def write_base_info(directory: str, model_name_or_path: str, vision_tower: str | None,
                    pretrain_mm_mlp_adapter: str | None, model_seed: int, template: str,
                    image_aspect_ratio: str, task_names: list[str], bits: int = 16) -> None:
    os.makedirs(directory, exist_ok=True)
    info = dict(model_name_or_path=model_name_or_path, vision_tower=vision_tower,
                pretrain_mm_mlp_adapter=pretrain_mm_mlp_adapter, model_seed=model_seed, version=template,
                image_aspect_ratio=image_aspect_ratio, task_names=task_names, bits=bits)
    with open(os.path.join(directory, BASE_NAME), "w") as f:
        json.dump(info, f, indent=2)


def read_base_info(directory: str) -> dict:
    path = os.path.join(directory, BASE_NAME)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{directory} has no {BASE_NAME}: not a llava-asymlora checkpoint")
    with open(path) as f:
        return json.load(f)
