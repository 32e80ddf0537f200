"""Image preprocessing as LLaVA-1.5 does it: optional pad-to-square with the CLIP mean colour, then CLIP's
resize + centre crop + normalise."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
from transformers import CLIPImageProcessorPil

OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def clip_image_processor(image_size: int) -> CLIPImageProcessorPil:
    """CLIP's preprocessing at `image_size` (336 for ViT-L/14-336). The PIL backend needs no torchvision."""
    return CLIPImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=OPENAI_CLIP_MEAN,
        image_std=OPENAI_CLIP_STD,
        do_convert_rgb=True,
    )


def expand_to_square(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Pad the shorter side symmetrically so nothing is cropped away (LLaVA's `expand2square`)."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), background)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB with 16-bit and float modes scaled in proportion (PIL's own convert saturates them to white)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 255.0 if values.max(initial=0) <= 255 else 65535.0 if values.max() <= 65535 else float(values.max())
        if image.mode == "F" and values.max(initial=0) <= 1.0:
            top = 1.0
        image = Image.fromarray(np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")


def pad_and_resize(image: Image.Image, background: tuple[int, int, int], size: int,
                   resample=Image.Resampling.BICUBIC) -> Image.Image:
    """LLaVA's pad-to-square then resize to size x size, without building the square canvas.

    Output pixels whose resampling window lies wholly in the padding are the background colour; the others are
    resampled (PIL `resize` with a `box`) from a canvas that holds the image plus the filter's reach of padding,
    with the same source coordinates as the full canvas. A 20000x20 panorama no longer makes a 20000x20000 canvas.
    """
    w, h = image.size
    side = max(w, h)
    ox, oy = (side - w) // 2, (side - h) // 2  # where expand_to_square pastes it
    scale = side / size
    reach = 2.0 * max(scale, 1.0) + 2  # bicubic support in source pixels, plus rounding slack

    def span(offset, length):  # output range touched by the image, then the source window it maps to
        lo = max(0, math.floor((offset - reach) / scale))
        hi = min(size, math.ceil((offset + length + reach) / scale))
        src_lo, src_hi = lo * scale, hi * scale
        return lo, hi, max(0, math.floor(src_lo - reach)), min(side, math.ceil(src_hi + reach)), src_lo, src_hi

    c0, c1, lx0, lx1, sx0, sx1 = span(ox, w)
    r0, r1, ly0, ly1, sy0, sy1 = span(oy, h)
    local = Image.new(image.mode, (lx1 - lx0, ly1 - ly0), background)
    local.paste(image, (ox - lx0, oy - ly0))
    region = local.resize((c1 - c0, r1 - r0), resample, box=(sx0 - lx0, sy0 - ly0, sx1 - lx0, sy1 - ly0))
    out = Image.new(image.mode, (size, size), background)
    out.paste(region, (c0, r0))
    return out


class ImageTransform:
    """Callable: PIL image -> pixel tensor [3, H, W], under LLaVA's `image_aspect_ratio` ("pad" or "resize"/"square")."""

    def __init__(self, processor, aspect_ratio: str = "pad"):
        if aspect_ratio not in ("pad", "resize", "square"):
            raise ValueError(f"image_aspect_ratio must be 'pad', 'resize' or 'square', got {aspect_ratio!r}")
        self.processor = processor
        self.aspect_ratio = aspect_ratio
        self.background = tuple(int(round(255 * m)) for m in processor.image_mean)

    def __call__(self, image: Image.Image):
        image = to_rgb(image)
        if self.aspect_ratio == "pad":
            size = self._square_size()
            image = pad_and_resize(image, self.background, size) if size else expand_to_square(image, self.background)
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]

    def _square_size(self) -> int | None:
        """The side the processor turns a square into (CLIP: resize shortest edge to N, crop N x N), else None."""
        size, crop = getattr(self.processor, "size", None) or {}, getattr(self.processor, "crop_size", None) or {}
        edge = size.get("shortest_edge") if isinstance(size, dict) else getattr(size, "shortest_edge", None)
        crop_h = crop.get("height") if isinstance(crop, dict) else getattr(crop, "height", None)
        crop_w = crop.get("width") if isinstance(crop, dict) else getattr(crop, "width", None)
        return edge if edge and edge == crop_h == crop_w else None
