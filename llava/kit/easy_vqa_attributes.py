"""Each easy-vqa image's shape and colour, from the package's own questions and the image's pixels.

easy-vqa ships questions, not labels; the experiment kit needs both attributes of every image (captions, question
generation, paired yes/no questions, the tower's pre-training). Its images are one flat-coloured shape on a
near-white background in 8 pure colours. Colour: the foreground's most frequent pixel, nearest of the 8. Shape: what
the questions say (a positive answer, or the one shape left after the negative ones); for images the questions do
not settle (~9%), how much of its bounding box the shape fills (rectangle ~1.0, circle ~0.8, triangle ~0.55), among
the shapes the questions leave possible. Measured: the fill rule agrees on all 4,533 images the questions settle.
Every fact any question states is then checked; a disagreement is an error naming image and question.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

SHAPES = ("circle", "rectangle", "triangle")
# The package's drawing colours (RGB) and their hex codes, the `vqa_hex` task's answers.
COLORS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "black": (0, 0, 0),
          "gray": (128, 128, 128), "teal": (0, 128, 128), "brown": (165, 42, 42), "yellow": (255, 255, 0)}
HEX = {name: "#{:02x}{:02x}{:02x}".format(*rgb) for name, rgb in COLORS.items()}
_FILL_TRIANGLE_MAX, _FILL_CIRCLE_MAX = 0.70, 0.915
_TYPICAL_FILL = {"triangle": 0.55, "circle": 0.8, "rectangle": 1.0}
_NEGATION = re.compile(r"\b(not|no)\b")


@dataclass(frozen=True)
class Attributes:
    shape: str
    color: str


def load_easy_vqa():
    try:
        import easy_vqa
    except ImportError as e:
        raise ImportError("the experiment kit's data comes from the easy-vqa package: pip install easy-vqa "
                          "(it is in the 'dev' extra that `make install` installs)") from e
    return easy_vqa


def most_common_colour(rgb: np.ndarray) -> np.ndarray:
    """The most frequent of [N, 3] RGB rows (the lowest on a tie). Each row packed into one integer, which sorts as the
    rows do: np.unique over rows (axis=0) is several times slower, and every image of the split is read this way."""
    keys = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    values, counts = np.unique(keys, return_counts=True)
    key = values[counts.argmax()]
    return np.array([key >> 16, (key >> 8) & 255, key & 255])


def from_pixels(path: str, shapes: tuple[str, ...] = SHAPES) -> Attributes:
    """Colour, and the shape among `shapes` whose typical fill is nearest the image's."""
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(np.int32)
    background = most_common_colour(np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]))
    mask = np.abs(pixels - background).sum(axis=2) > 60
    if mask.sum() < 16:
        raise ValueError(f"{path}: no shape found (fewer than 16 pixels differ from the background)")
    mode = most_common_colour(pixels[mask])  # the fill colour; anti-aliased edges (most of a tiny shape) blend into the bg
    color = min(COLORS, key=lambda c: float(np.abs(mode - np.array(COLORS[c])).sum()))
    ys, xs = np.nonzero(mask)
    fill = mask.sum() / ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1))
    guess = "triangle" if fill < _FILL_TRIANGLE_MAX else "circle" if fill < _FILL_CIRCLE_MAX else "rectangle"
    shape = guess if guess in shapes else min(shapes, key=lambda s: abs(fill - _TYPICAL_FILL[s]))
    return Attributes(shape, color)


def implied(question: str, answer: str) -> list[tuple[str, str, bool]]:
    """(kind, value, holds) facts a question/answer pair states: ("color", "red", True) for "is there a red
    shape?" -> yes; ("shape", "circle", False) for "does the image not contain a circle?" -> yes."""
    if answer in SHAPES:
        return [("shape", answer, True)]
    if answer in COLORS:
        return [("color", answer, True)]
    holds = (answer == "yes") != bool(_NEGATION.search(question))
    words = re.findall(r"[a-z]+", question.lower())
    return [("shape" if w in SHAPES else "color", w, holds) for w in words if w in SHAPES or w in COLORS]


def image_attributes(split: str) -> tuple[dict[int, Attributes], dict[int, str]]:
    """({image_id: Attributes}, {image_id: path}) for easy-vqa's "train" or "test" split, every question checked.
    Read once per process (the data set, the tower and the projector each ask; every image is decoded to read it)."""
    attrs, paths = _image_attributes(split)
    return dict(attrs), dict(paths)


@functools.lru_cache(maxsize=2)
def _image_attributes(split: str) -> tuple[dict[int, Attributes], dict[int, str]]:
    ev = load_easy_vqa()
    texts, answers, image_ids = getattr(ev, f"get_{split}_questions")()
    paths = getattr(ev, f"get_{split}_image_paths")()
    stated: dict[int, list] = {i: [] for i in paths}
    for text, answer, image_id in zip(texts, answers, image_ids):
        stated[image_id] += [(kind, value, holds) for kind, value, holds in implied(text, answer) if kind == "shape"]
    attrs = {}
    for image_id, path in sorted(paths.items()):
        said = [v for _, v, holds in stated[image_id] if holds]
        possible = tuple(s for s in SHAPES if s not in {v for _, v, holds in stated[image_id] if not holds})
        attrs[image_id] = from_pixels(path, tuple(said[:1]) or possible or SHAPES)
    for text, answer, image_id in zip(texts, answers, image_ids):
        a = attrs[image_id]
        for kind, value, holds in implied(text, answer):
            if (getattr(a, kind) == value) != holds:
                raise ValueError(f"easy-vqa {split} image {paths[image_id]}: read as {a}, but question "
                                 f"{text!r} -> {answer!r} says {kind} {value} is {'' if holds else 'not '}there")
    return attrs, paths
