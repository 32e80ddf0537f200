"""The `small` preset's stage-1 projector: tower patches mapped onto the language model's own word embeddings.

LLaVA's stage 1 trains the projector on captions so that the language model can read image tokens. At laptop scale
that alignment decides whether yes/no questions can be learnt at all in a short run (`python -m
llava.kit.yes_no_ablation`, docs/experiment_kit.md). So this projector is fitted (seconds, no language-model
forward) to put each patch token onto the input embedding of a word the model already knows: even positions the
image's colour word, odd positions its shape word. The image then reads like "red circle red circle ...", and "is
there a red shape?" becomes a comparison the pretrained model makes between tokens. This is a supervised stand-in for stage 1 on the two attributes the kit asks about, not LLaVA's caption pre-training; cached
like the tower, keyed by the tower recipe, the language model file and this recipe.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer, CLIPVisionModel

from llava.cache import cache_dir, publish_dir
from llava.kit.easy_vqa_attributes import COLORS, SHAPES
from llava.kit.shape_tower import TowerRecipe, patch_features, pixels_and_labels, pretrained_tower
from llava.kit.shipped import shipped
from llava.model.weights import PROJECTOR_KEY
from llava.model.zero import zero3_paused

DONE = "projector.ok"
FILE = "mm_projector.safetensors"


@dataclasses.dataclass(frozen=True)
class ProjectorRecipe:
    steps: int = 600
    batch: int = 256
    lr: float = 1e-3
    seed: int = 0

    def key(self, tower: TowerRecipe, lm_file: str) -> str:
        text = "|".join([json.dumps(dataclasses.asdict(self), sort_keys=True), tower.key(), os.path.basename(lm_file),
                         "even-colour-odd-shape|v1"])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def word_ids(tokenizer, words) -> list[int]:
    """The first token of each word as it appears mid-sentence (with its leading space), as in the kit's questions
    ("teal" is two tokens in SmolLM2's vocabulary; its first one stands for it)."""
    return [tokenizer(" " + w, add_special_tokens=False).input_ids[0] for w in words]


def mlp2x_gelu(vision_width: int, text_width: int) -> torch.nn.Sequential:
    """LLaVA-1.5's projector as its builder initialises one (nn.Linear defaults)."""
    return torch.nn.Sequential(torch.nn.Linear(vision_width, text_width), torch.nn.GELU(),
                               torch.nn.Linear(text_width, text_width))


def stage1_state(projector: torch.nn.Sequential) -> dict[str, torch.Tensor]:
    """The projector's tensors under LLaVA's stage-1 file keys (`model.mm_projector.{0,2}.*`)."""
    return {f"{PROJECTOR_KEY}{k}": v.detach().contiguous() for k, v in projector.state_dict().items()}


def _patch_features(tower: CLIPVisionModel, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([patch_features(tower, chunk) for chunk in pixels.split(256)])


def _targets(colour_emb, shape_emb, shapes, colours, n_tokens: int) -> torch.Tensor:
    even = torch.arange(n_tokens) % 2 == 0
    return torch.where(even[None, :, None], colour_emb[colours][:, None], shape_emb[shapes][:, None])


def word_embeddings(lm_dir: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The language model's input embeddings of the colour words and of the shape words."""
    tokenizer = AutoTokenizer.from_pretrained(lm_dir)
    lm = AutoModelForCausalLM.from_pretrained(lm_dir, dtype=torch.float32)
    embeddings = lm.get_input_embeddings().weight.detach()
    return embeddings[word_ids(tokenizer, COLORS)], embeddings[word_ids(tokenizer, SHAPES)]


def nearest_word_accuracies(projector, tower, colour_emb, shape_emb, image_size: int) -> tuple[float, float]:
    """On easy-vqa's test images: how often the mean of the even (odd) image tokens lies nearest the image's colour
    (shape) word."""
    test_pixels, test_shapes, test_colours = pixels_and_labels("test", image_size)
    with torch.no_grad():
        out = projector(_patch_features(tower, test_pixels))
        colour_acc = ((out[:, 0::2].mean(1) @ colour_emb.T).argmax(-1) == test_colours).float().mean().item()
        shape_acc = ((out[:, 1::2].mean(1) @ shape_emb.T).argmax(-1) == test_shapes).float().mean().item()
    return colour_acc, shape_acc


def fit_projector(tower_dir: str, lm_dir: str, tower_recipe: TowerRecipe, recipe: ProjectorRecipe, log=print):
    """(projector state dict in LLaVA's mm_projector keys, report with held-out nearest-word accuracies)."""
    torch.manual_seed(recipe.seed)
    tower = CLIPVisionModel.from_pretrained(tower_dir).eval()
    colour_emb, shape_emb = word_embeddings(lm_dir)
    pixels, shapes, colours = pixels_and_labels("train", tower_recipe.image_size)
    feats = _patch_features(tower, pixels)
    width = colour_emb.shape[1]
    projector = mlp2x_gelu(feats.shape[-1], width)
    optimizer = torch.optim.AdamW(projector.parameters(), lr=recipe.lr)
    generator = torch.Generator().manual_seed(recipe.seed)
    start, losses = time.time(), []
    for step in range(recipe.steps):
        idx = torch.randint(len(feats), (recipe.batch,), generator=generator)
        out = projector(feats[idx])
        target = _targets(colour_emb, shape_emb, shapes[idx], colours[idx], out.shape[1])
        loss = torch.nn.functional.mse_loss(out, target)
        losses.append(loss.item())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % 200 == 0:
            log(f"  projector alignment step {step + 1}/{recipe.steps}: mse {loss.item():.5f}")
    colour_acc, shape_acc = nearest_word_accuracies(projector, tower, colour_emb, shape_emb, tower_recipe.image_size)
    report = {"test_nearest_colour_word": colour_acc, "test_nearest_shape_word": shape_acc,
              "first_mse": losses[0], "last_mse": losses[-1], "train_seconds": round(time.time() - start, 1),
              "recipe": dataclasses.asdict(recipe)}
    return stage1_state(projector), report


def aligned_projector(lm_dir: str, lm_file: str, tower_recipe: TowerRecipe | None = None,
                      recipe: ProjectorRecipe | None = None, log=print, use_shipped: bool = True) -> str:
    """Path of the projector file: the package's own where it ships this recipe (llava/kit/shipped.py), else the
    cached one (fitted first if absent; written atomically)."""
    tower_recipe, recipe = tower_recipe or TowerRecipe(), recipe or ProjectorRecipe()
    if use_shipped and (path := shipped("projector", recipe.key(tower_recipe, lm_file), DONE)):
        return os.path.join(path, FILE)
    target = os.path.join(cache_dir("projectors"), f"word-aligned-{recipe.key(tower_recipe, lm_file)}")
    if os.path.exists(os.path.join(target, DONE)):
        return os.path.join(target, FILE)
    tower_dir = pretrained_tower(tower_recipe, log, use_shipped)
    log(f"aligning the small preset's projector with the language model's word embeddings (once; cached in {target})")
    with zero3_paused():
        state, report = fit_projector(tower_dir, lm_dir, tower_recipe, recipe, log)
    log(f"  held-out nearest word: colour {report['test_nearest_colour_word']:.3f}, "
        f"shape {report['test_nearest_shape_word']:.3f} ({report['train_seconds']} s)")

    def write(directory: str) -> None:
        save_file(state, os.path.join(directory, FILE))
        with open(os.path.join(directory, "alignment.json"), "w") as f:
            json.dump(report, f, indent=1)

    return os.path.join(publish_dir(target, write, DONE), FILE)
