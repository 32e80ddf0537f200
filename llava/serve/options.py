"""The options the API server and the web app share: what to serve, on which device, and the request limits."""

from __future__ import annotations

import argparse
import os

from llava.serve.engine import Engine
from llava.serve.images import MB, ImageLimits
from llava.serve.models import ModelRegistry, parse_model_path

BUILT_IN = ("tiny", "small")  # presets llava.model.builder builds without files


def server_parser(doc: str, port: int) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-path", action="append", required=True, metavar="[NAME=]DIR",
                    help="checkpoint dir, merged/llava-hf dir, or a preset (tiny, small); repeat to serve several")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=port)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16")
    ap.add_argument("--conv-mode", default=None, help="template; default: the checkpoint's own (llava_base.json)")
    ap.add_argument("--require-image", action="store_true",
                    help="refuse messages without an image (checkpoints trained on image questions only)")
    ap.add_argument("--max-tokens", type=int, default=1024, help="cap on a request's max_tokens")
    ap.add_argument("--max-image-mb", type=float, default=20.0)
    ap.add_argument("--max-image-side", type=int, default=4096, help="pixels, width or height")
    ap.add_argument("--allowed-local-media-path", default=None, metavar="DIR",
                    help="images may be named by path (or file:// URL) under DIR; default: no local paths")
    ap.add_argument("--allow-remote-images", action="store_true", help="fetch http(s) image URLs")
    ap.add_argument("--compile", action="store_true",
                    help="decode with a static KV cache and the decoding step compiled (GPU); same greedy answers")
    ap.add_argument("--max-batch", type=int, default=32, help="requests answered by one generate call")
    ap.add_argument("--batch-window-ms", type=float, default=10.0,
                    help="how long the first waiting request waits for others to batch with")
    ap.add_argument("--max-queue", type=int, default=256, help="waiting requests beyond this get 429")
    ap.add_argument("--log-level", default="warning")
    ap.add_argument("--wait-for-models", action="store_true",
                    help="load every model before listening (default: listen at once, models load in the background)")
    return ap


def start_serving(ap: argparse.ArgumentParser, args) -> tuple[ModelRegistry, Engine, ImageLimits, str | None]:
    """Check the options (a mistake ends in one line, exit 2), start loading the models in the background, start
    the engine."""
    for spec in args.model_path:
        try:
            _, path = parse_model_path(spec)
        except ValueError as e:
            ap.error(str(e))
        if path not in BUILT_IN and not os.path.isdir(path):
            ap.error(f"--model-path {spec}: no such directory")
    if args.allowed_local_media_path and not os.path.isdir(args.allowed_local_media_path):
        ap.error(f"--allowed-local-media-path {args.allowed_local_media_path}: no such directory")
    if args.max_tokens < 1 or args.max_batch < 1 or args.max_queue < 1:
        ap.error("--max-tokens, --max-batch and --max-queue must be >= 1")
    try:
        registry = ModelRegistry(args.model_path, device=args.device, dtype=args.dtype, conv_mode=args.conv_mode,
                                 requires_image=args.require_image, compiled=args.compile)
    except ValueError as e:
        ap.error(str(e))
    limits = ImageLimits(int(args.max_image_mb * MB), args.max_image_side, args.allowed_local_media_path,
                         args.allow_remote_images)
    engine = Engine(args.max_batch, args.batch_window_ms / 1000, args.max_queue)
    registry.start(background=not args.wait_for_models)
    if args.wait_for_models and not registry.models:
        raise SystemExit(2)  # each failure was printed as it happened
    return registry, engine, limits, getattr(args, "api_key", None) or os.environ.get(
        "LLAVA_API_KEY") or None
