"""A small CLIP-architecture vision tower pre-trained on easy-vqa's train images as a shape / colour classifier.

The `small` preset needs a tower whose features say something about the image: a random tower gives the language
model almost nothing (colour barely above the majority answer), and no CLIP checkpoint can be downloaded here. This is NOT CLIP pre-training: it is supervised on the two attributes the kit's tasks ask about,
from the layer LLaVA reads (vision_feature_layer=-2, patch tokens, mean-pooled), so the frozen tower hands the
language model what it needs and nothing more. Trained once per recipe and cached as an ordinary
CLIP vision directory (safetensors + preprocessor config) under the user cache, keyed by the recipe.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time

import numpy as np
import torch
from PIL import Image
from transformers import CLIPVisionConfig, CLIPVisionModel

from llava.cache import cache_dir, publish_dir
from llava.kit.easy_vqa_attributes import COLORS, SHAPES, image_attributes
from llava.kit.shipped import shipped
from llava.model.image import clip_image_processor
from llava.model.zero import zero3_paused

DONE = "tower.ok"


@dataclasses.dataclass(frozen=True)
class TowerRecipe:
    image_size: int = 64  # easy-vqa's images are 64x64
    patch_size: int = 16  # 16 image tokens for the LM
    hidden_size: int = 192
    intermediate_size: int = 384
    layers: int = 4
    heads: int = 4
    steps: int = 500
    batch: int = 64
    lr: float = 1e-3
    seed: int = 0

    def key(self) -> str:
        text = json.dumps(dataclasses.asdict(self), sort_keys=True) + "|easy-vqa-train|v1"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def tower_config(recipe: TowerRecipe) -> CLIPVisionConfig:
    return CLIPVisionConfig(hidden_size=recipe.hidden_size, intermediate_size=recipe.intermediate_size,
                            num_hidden_layers=recipe.layers, num_attention_heads=recipe.heads,
                            image_size=recipe.image_size, patch_size=recipe.patch_size, projection_dim=recipe.hidden_size)


def pixels_and_labels(split: str, image_size: int):
    attrs, paths = image_attributes(split)
    processor = clip_image_processor(image_size)
    ids = sorted(attrs)
    images = [Image.open(paths[i]).convert("RGB") for i in ids]
    pixels = torch.tensor(np.stack(processor(images=images, return_tensors="np")["pixel_values"]))
    shapes = torch.tensor([SHAPES.index(attrs[i].shape) for i in ids])
    colors = torch.tensor([list(COLORS).index(attrs[i].color) for i in ids])
    return pixels, shapes, colors


def patch_features(tower: CLIPVisionModel, pixels: torch.Tensor) -> torch.Tensor:
    """What LLaVA feeds its projector: layer -2, CLS dropped."""
    return tower(pixel_values=pixels, output_hidden_states=True).hidden_states[-2][:, 1:]


def _features(tower: CLIPVisionModel, pixels: torch.Tensor) -> torch.Tensor:
    return patch_features(tower, pixels).mean(dim=1)


def train_tower(recipe: TowerRecipe, log=print) -> tuple[CLIPVisionModel, dict]:
    """Pre-train the tower; returns it and its held-out accuracies on easy-vqa's test images."""
    generator = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    tower = CLIPVisionModel(tower_config(recipe))
    heads = torch.nn.ModuleDict({"shape": torch.nn.Linear(recipe.hidden_size, len(SHAPES)),
                                 "color": torch.nn.Linear(recipe.hidden_size, len(COLORS))})
    pixels, shapes, colors = pixels_and_labels("train", recipe.image_size)
    params = list(tower.parameters()) + list(heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=recipe.steps,
                                                   pct_start=0.1)
    start = time.time()
    tower.train()
    for step in range(recipe.steps):
        idx = torch.randint(len(pixels), (recipe.batch,), generator=generator)
        feats = _features(tower, pixels[idx])
        loss = (torch.nn.functional.cross_entropy(heads["shape"](feats), shapes[idx])
                + torch.nn.functional.cross_entropy(heads["color"](feats), colors[idx]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if (step + 1) % 100 == 0:
            log(f"  tower pre-training step {step + 1}/{recipe.steps}: loss {loss.item():.3f}")
    tower.eval()
    test_pixels, test_shapes, test_colors = pixels_and_labels("test", recipe.image_size)
    with torch.no_grad():
        feats = torch.cat([_features(tower, chunk) for chunk in test_pixels.split(256)])
        report = {"test_shape_accuracy": (heads["shape"](feats).argmax(-1) == test_shapes).float().mean().item(),
                  "test_color_accuracy": (heads["color"](feats).argmax(-1) == test_colors).float().mean().item(),
                  "train_seconds": round(time.time() - start, 1), "recipe": dataclasses.asdict(recipe)}
    return tower, report


def pretrained_tower(recipe: TowerRecipe | None = None, log=print, use_shipped: bool = True) -> str:
    """The tower directory for `recipe`: the package's own where it ships that recipe (llava/kit/shipped.py), else
    the cached one, trained first if it is not there yet (written atomically)."""
    recipe = recipe or TowerRecipe()
    if use_shipped and (path := shipped("tower", recipe.key(), DONE)):
        return path
    target = os.path.join(cache_dir("towers"), f"easy-vqa-shape-color-{recipe.key()}")
    if os.path.exists(os.path.join(target, DONE)):
        return target
    log(f"pre-training the small preset's vision tower on easy-vqa train images (once; cached in {target})")
    with zero3_paused():
        tower, report = train_tower(recipe, log)
    log(f"  tower held-out accuracy: shape {report['test_shape_accuracy']:.3f}, "
        f"colour {report['test_color_accuracy']:.3f} ({report['train_seconds']} s)")

    def write(directory: str) -> None:
        tower.save_pretrained(directory)
        clip_image_processor(recipe.image_size).save_pretrained(directory)
        with open(os.path.join(directory, "pretraining.json"), "w") as f:
            json.dump(report, f, indent=1)

    return publish_dir(target, write, DONE)
