"""Image preprocessing as LLaVA-1.5 does it: optional pad-to-square with the CLIP mean colour, then CLIP's
resize + centre crop + normalise."""

from __future__ import annotations

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


class ImageTransform:
    """Callable: PIL image -> pixel tensor [3, H, W], under LLaVA's `image_aspect_ratio` ("pad" or "resize"/"square")."""

    def __init__(self, processor, aspect_ratio: str = "pad"):
        if aspect_ratio not in ("pad", "resize", "square"):
            raise ValueError(f"image_aspect_ratio must be 'pad', 'resize' or 'square', got {aspect_ratio!r}")
        self.processor = processor
        self.aspect_ratio = aspect_ratio
        self.background = tuple(int(round(255 * m)) for m in processor.image_mean)

    def __call__(self, image: Image.Image):
        image = image.convert("RGB")
        if self.aspect_ratio == "pad":
            image = expand_to_square(image, self.background)
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]
