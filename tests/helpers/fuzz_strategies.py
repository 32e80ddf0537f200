"""hypothesis strategies for the fuzz suite (tests/test_fuzz.py): JSON of any shape, chat requests near and far from
valid, image files of every format and PIL mode (then mutated), LLaVA training records, JSONL lines."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib

from hypothesis import strategies as st
from PIL import Image

# text with everything JSON can carry: lone surrogates (category Cs), NULs, control and private-use characters
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
SCALARS = (st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats(allow_nan=True, allow_infinity=True)
           | ANY_TEXT)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
                    max_leaves=12)


def encode_json(value) -> bytes:
    """json.dumps as clients send it: NaN / Infinity literals allowed, surrogates escaped (\\udcff)."""
    return json.dumps(value).encode()


# --- images ---------------------------------------------------------------------------------------------------
MODES = {"PNG": ["1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I"], "JPEG": ["L", "RGB", "CMYK"], "GIF": ["L", "P"],
         "WEBP": ["RGB", "RGBA"], "BMP": ["1", "L", "P", "RGB"], "TIFF": ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK",
                                                                          "I;16", "I", "F"]}
MUTATIONS = ["none", "truncate", "flip", "junk", "huge sides"]


@st.composite
def image_files(draw) -> tuple[str, bytes]:
    """(what, bytes): an image of any format and mode, maybe animated / with EXIF rotation / transparency, then
    maybe truncated, bit-flipped near the header, padded with junk, or declaring huge sides."""
    fmt = draw(st.sampled_from(sorted(MODES)))
    mode = draw(st.sampled_from(MODES[fmt]))
    w, h = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    noise = draw(st.binary(min_size=w * h * 3, max_size=w * h * 3))
    im = Image.frombytes("RGB", (w, h), noise)
    im = im.convert(mode) if mode not in ("I;16", "I", "F") else im.convert("L").convert(mode)
    kwargs = {}
    if mode == "P" and draw(st.booleans()):
        kwargs["transparency"] = 0
    if fmt in ("JPEG", "PNG", "WEBP", "TIFF") and draw(st.booleans()):
        exif = Image.Exif()
        exif[0x0112] = draw(st.integers(1, 8))  # orientation
        kwargs["exif"] = exif
    if fmt in ("GIF", "WEBP", "PNG") and mode in ("L", "P", "RGB", "RGBA") and draw(st.booleans()):
        kwargs.update(save_all=True, append_images=[im.transpose(Image.Transpose.ROTATE_180)])
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    data = buf.getvalue()
    mutation = draw(st.sampled_from(MUTATIONS))
    if mutation == "truncate":
        data = data[:draw(st.integers(0, max(0, len(data) - 1)))]
    elif mutation == "flip":
        at = draw(st.lists(st.integers(0, min(len(data), 64) - 1), min_size=1, max_size=4))
        data = bytearray(data)
        for i in at:
            data[i] ^= 1 << draw(st.integers(0, 7))
        data = bytes(data)
    elif mutation == "junk":
        data += draw(st.binary(min_size=1, max_size=64))
    elif mutation == "huge sides":
        data = huge_sides(fmt, data, draw(st.integers(5000, 60000)), draw(st.integers(5000, 60000)))
    return f"{fmt} {mode} {w}x{h} {sorted(kwargs)} {mutation}", data


def huge_sides(fmt: str, data: bytes, w: int, h: int) -> bytes:
    """The same file declaring w x h in its header (a decompression bomb's header: kilobytes claiming gigapixels)."""
    if fmt == "PNG":  # IHDR: width, height at 16..24, its CRC after the 13 data bytes
        ihdr = data[12:16] + struct.pack(">II", w, h) + data[24:29]
        return data[:16] + ihdr[4:] + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]
    if fmt == "BMP":  # BITMAPINFOHEADER width, height
        return data[:18] + struct.pack("<ii", w, h) + data[26:]
    if fmt == "GIF":  # logical screen size
        return data[:6] + struct.pack("<HH", min(w, 65535), min(h, 65535)) + data[10:]
    return data


def bomb_png(w: int = 30000, h: int = 30000) -> bytes:
    """A few hundred bytes declaring w x h pixels."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "PNG")
    return huge_sides("PNG", buf.getvalue(), w, h)


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


# --- chat requests ----------------------------------------------------------------------------------------------
def small_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (12, 10), (200, 30, 40)).save(buf, "PNG")
    return buf.getvalue()


URLS = st.sampled_from([data_url(small_png()), "data:image/png;base64,!!!", "data:,x", "file:///etc/passwd",
                        "/etc/passwd", "http://127.0.0.1:9/x.png", "ftp://x/y.png", "", data_url(bomb_png())]) | ANY_TEXT
# the model's own markers typed as text: the image placeholder, special tokens, the template's role names
MARKERS = st.sampled_from(["<image>", "<image>\nwhat is it?", "</s>", "<s>", "<unk>", "ASSISTANT:", "USER: hi"])
PLAIN = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20) | MARKERS


def mostly(valid, odd=JSON, in_ten: int = 9):
    """`in_ten` draws in ten from `valid`, the others from `odd`: requests near a valid one reach deep into the
    server (a request with any odd field is mostly refused at parsing)."""
    return st.sampled_from(range(10)).flatmap(lambda k: valid if k < in_ten else odd)


IMAGE_PART = st.fixed_dictionaries({"type": st.just("image_url"),
                                    "image_url": mostly(st.fixed_dictionaries({"url": mostly(st.just(data_url(
                                        small_png())), URLS)}), URLS)})
TEXT_PART = st.fixed_dictionaries({"type": st.just("text"), "text": mostly(PLAIN, ANY_TEXT)})
PARTS = mostly(TEXT_PART | IMAGE_PART, st.fixed_dictionaries({"type": ANY_TEXT | JSON}) | JSON)
MESSAGES = st.fixed_dictionaries(
    {"role": mostly(st.sampled_from(["user", "assistant", "system"]), st.sampled_from(["developer", "tool", ""]) | JSON),
     "content": mostly(PLAIN | st.lists(PARTS, min_size=1, max_size=3), ANY_TEXT | JSON)},
    optional={"name": JSON})
OPTIONS = {name: mostly(valid, in_ten=9) for name, valid in {
    "model": st.sampled_from(["tiny", "tiny:0", "nope"]),
    "max_tokens": st.integers(1, 3), "max_completion_tokens": st.integers(-5, 10**12),
    "temperature": st.floats(0, 2), "top_p": st.floats(0.01, 1), "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
    "stop": st.lists(PLAIN, max_size=5) | PLAIN, "n": st.just(1), "seed": st.integers(),
    "logprobs": st.just(False), "tools": st.just([]), "response_format": st.just({"type": "text"})}.items()}
CHAT_REQUESTS = st.fixed_dictionaries({"messages": mostly(st.lists(MESSAGES, min_size=1, max_size=4))}, optional=OPTIONS)
BODIES = mostly(CHAT_REQUESTS.map(encode_json), JSON.map(encode_json) | st.binary(max_size=200)
                | st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth), in_ten=7)


# --- training records -------------------------------------------------------------------------------------------
GOOD_RECORDS = st.builds(
    lambda i, image, question, answer: {
        "id": f"good{i}", **({"image": image} if image else {}),
        "conversations": [{"from": "human", "value": ("<image>\n" if image else "") + question},
                          {"from": "gpt", "value": answer}]},
    st.integers(0, 10**6), st.sampled_from([None, "ok0.png", "ok1.png"]),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30)
    .filter(lambda t: t.strip() and "<image>" not in t),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=10)
    .filter(lambda t: t.strip() and "<image>" not in t))
TURN = st.fixed_dictionaries({"from": st.sampled_from(["human", "gpt", "system", "user", "x"]) | JSON,
                              "value": st.sampled_from(["<image>\nq", "<image>\n<image>\nq", "a", ""]) | ANY_TEXT
                              | JSON})
ANY_RECORDS = st.fixed_dictionaries(
    {}, optional={"id": JSON, "image": st.sampled_from(["ok0.png", "missing.png", "bad.png", ""]) | JSON,
                  "conversations": st.lists(TURN, max_size=4) | JSON}) | JSON
