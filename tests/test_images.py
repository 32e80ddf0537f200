"""Images: 16-bit and float modes keep their values in proportion; `pad` equals LLaVA's pad-then-resize within
1/255 per pixel without building the square canvas, so a 20000x20 panorama is cheap."""

import time

import numpy as np
import pytest
from PIL import Image

from llava.model.image import ImageTransform, clip_image_processor, expand_to_square, pad_and_resize, to_rgb

BG = (122, 116, 104)  # CLIP mean colour, as ImageTransform uses


def test_16_bit_png_keeps_values_in_proportion(tmp_path):
    values = np.array([[0, 1000, 30000], [45000, 60000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as im:
        assert im.mode.startswith("I")
        rgb = np.asarray(to_rgb(im))
    np.testing.assert_array_equal(rgb[..., 0], np.rint(values / 257).astype(np.uint8))
    assert (rgb[..., 0] == rgb[..., 2]).all() and rgb.max() == 255 and rgb[0, 1, 0] == 4  # not saturated to white


@pytest.mark.parametrize("size_wh", [(20000, 20), (20, 900), (640, 480), (300, 299), (7, 50), (336, 100), (40, 40)])
def test_pad_equals_pad_then_resize(size_wh):
    rng = np.random.default_rng(sum(size_wh))
    image = Image.fromarray(rng.integers(0, 256, (size_wh[1], size_wh[0], 3), dtype=np.uint8))
    ours = np.asarray(pad_and_resize(image, BG, 336), dtype=np.int16)
    llava = np.asarray(expand_to_square(image, BG).resize((336, 336), Image.Resampling.BICUBIC), dtype=np.int16)
    assert np.abs(ours - llava).max() <= 1


def test_panorama_fetches_fast_and_as_llava_would():
    transform = ImageTransform(clip_image_processor(336), "pad")
    panorama = Image.fromarray(np.full((20, 20000, 3), 200, dtype=np.uint8))
    transform(panorama)  # warm-up
    start = time.perf_counter()
    pixels = transform(panorama)
    assert time.perf_counter() - start < 0.2
    assert tuple(pixels.shape) == (3, 336, 336)
