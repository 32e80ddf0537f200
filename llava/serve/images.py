"""Images from a request: base64 data URLs, files under an allowed directory, remote URLs when enabled.

Every image is checked before it is decoded: its encoded size, then its width and height from the header (a
20000x20 strip is a few kilobytes but pads to 20000x20000 for LLaVA-1.5), then whether it decodes at all.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import warnings
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from PIL import Image

from llava.model.image import to_rgb
from llava.serve.errors import BadRequest, Forbidden, TooLarge

MB = 1024 * 1024


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 20 * MB
    max_side: int = 4096
    allowed_dir: str | None = None  # local paths (file:// or plain) only under this directory; None: refused
    allow_remote: bool = False  # http(s) URLs are fetched only when enabled
    remote_timeout_s: float = 10.0


def check_side(size: tuple[int, int], limits: ImageLimits, where: str = "image") -> None:
    w, h = size
    if max(w, h) > limits.max_side:
        raise BadRequest(f"{where} is {w}x{h}; this server takes images up to {limits.max_side} pixels a side "
                         "(--max-image-side)", code="image_too_large")


def decode_image(data: bytes, limits: ImageLimits, where: str = "image") -> Image.Image:
    if len(data) > limits.max_bytes:
        raise TooLarge(f"{where} is {len(data) / MB:.1f} MB; this server takes images up to "
                       f"{limits.max_bytes / MB:.0f} MB (--max-image-mb)", code="image_too_large")
    try:
        with warnings.catch_warnings():  # PIL warns between 1x and 2x its pixel limit; our side check decides below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError as e:  # PIL's own size guard fires in open, before ours could read the size
        raise BadRequest(f"{where} declares more than {2 * Image.MAX_IMAGE_PIXELS} pixels; this server takes images "
                         f"up to {limits.max_side} pixels a side (--max-image-side)", code="image_too_large") from e
    except Exception as e:  # untrusted bytes: PIL's parsers raise many kinds on a malformed header; all are the client's
        raise BadRequest(f"{where} is not an image PIL can read (PNG, JPEG, WebP, GIF, BMP, ...)",
                         code="invalid_image") from e
    check_side(im.size, limits, where)  # from the header, before the pixels are decoded
    try:
        im.load()
        return to_rgb(im)
    except Exception as e:  # untrusted bytes, as above: a truncated or corrupt body in any of PIL's decoders
        raise BadRequest(f"{where} could not be decoded ({type(e).__name__}: {str(e)[:200]})",
                         code="invalid_image") from e


def _data_url(url: str, limits: ImageLimits) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep or ";base64" not in header:
        raise BadRequest("image data URL must be data:<mime>;base64,<data>", code="invalid_image")
    if len(payload) * 3 // 4 > limits.max_bytes:  # refuse before decoding 80 MB of base64
        raise TooLarge(f"image is {len(payload) * 3 / 4 / MB:.1f} MB; this server takes images up to "
                       f"{limits.max_bytes / MB:.0f} MB (--max-image-mb)", code="image_too_large")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as e:
        raise BadRequest(f"image data URL is not valid base64 ({e})", code="invalid_image") from e


def _local_file(path: str, limits: ImageLimits) -> bytes:
    if limits.allowed_dir is None:
        raise Forbidden("local image paths are refused: start the server with --allowed-local-media-path DIR",
                        code="local_path_refused")
    root = os.path.realpath(limits.allowed_dir)
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root:
        raise Forbidden(f"image path {path} is outside the allowed directory {limits.allowed_dir}",
                        code="local_path_refused")
    if not os.path.isfile(real):
        raise BadRequest(f"image file {path} not found", code="image_not_found")
    if os.path.getsize(real) > limits.max_bytes:
        raise TooLarge(f"image file {path} is {os.path.getsize(real) / MB:.1f} MB; this server takes images up to "
                       f"{limits.max_bytes / MB:.0f} MB (--max-image-mb)", code="image_too_large")
    with open(real, "rb") as f:
        return f.read()


def _remote(url: str, limits: ImageLimits) -> bytes:
    if not limits.allow_remote:
        raise Forbidden("remote image URLs are refused: send the image as a base64 data URL, or start the server "
                        "with --allow-remote-images", code="remote_url_refused")
    import httpx  # a dependency of the serve extra (openai, gradio)

    try:
        with httpx.stream("GET", url, timeout=limits.remote_timeout_s, follow_redirects=True) as r:
            r.raise_for_status()
            data = b""
            for chunk in r.iter_bytes():
                data += chunk
                if len(data) > limits.max_bytes:
                    raise TooLarge(f"image at {url} is over {limits.max_bytes / MB:.0f} MB (--max-image-mb)",
                                   code="image_too_large")
            return data
    except httpx.HTTPError as e:
        raise BadRequest(f"could not fetch image {url}: {e}", code="image_fetch_failed") from e


def load_image_url(url: str, limits: ImageLimits) -> Image.Image:
    """An OpenAI image_url's url -> RGB image, or a ServeError saying why not."""
    if not isinstance(url, str) or not url:
        raise BadRequest("image_url.url must be a non-empty string", param="messages")
    scheme = urlparse(url).scheme
    if scheme == "data":
        return decode_image(_data_url(url, limits), limits)
    if scheme in ("http", "https"):
        return decode_image(_remote(url, limits), limits, where=f"image {url}")
    if scheme == "file":
        path = unquote(urlparse(url).path)
    elif scheme == "":
        path = url
    else:
        raise BadRequest(f"unsupported image URL scheme {scheme!r} (data:, file:, http(s):)", code="invalid_image")
    return decode_image(_local_file(path, limits), limits, where=f"image {path}")
