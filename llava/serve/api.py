"""OpenAI-compatible API: `python -m llava.serve.api --model-path CKPT [--model-path NAME=CKPT2] [--port 8000]`.

/v1/chat/completions (streamed as server-sent events, or whole; temperature 0 is greedy and gives
llava.eval.generate's answer), /v1/models (the ids a request may name: NAME, or NAME:TASK per task head), /health.
Routed AsymLoRA / MoE-LoRA checkpoints are served as trained: per token, never merged.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from llava.serve import openai_protocol as oai
from llava.serve.engine import Engine, Job
from llava.serve.errors import ServeError, TooLarge, Unauthorized
from llava.serve.images import MB, ImageLimits, load_image_url
from llava.serve.jobs import build_job
from llava.serve.models import ModelRegistry

log = logging.getLogger("llava.serve")


def create_app(registry: ModelRegistry, engine: Engine, limits: ImageLimits | None = None,
               api_key: str | None = None, max_tokens_cap: int = 1024) -> FastAPI:
    limits = limits or ImageLimits()
    app = FastAPI(title="llava-asymlora", docs_url=None, redoc_url=None)
    body_cap = 4 * limits.max_bytes + 16 * MB  # base64 of the largest image, and the rest of the request

    _answer_errors_in_json(app)

    @app.get("/health")
    async def health():
        return {"status": "loading" if registry.loading else "ok", "models": registry.ids(),
                "loading": list(registry.pending), "failed": registry.failed, "waiting": engine.waiting,
                "batches_run": engine.batches_run}

    @app.get("/v1/models")
    async def models(request: Request):
        _check_key(request, api_key)
        data = [{"id": i, "object": "model", "created": int(m.loaded_at), "owned_by": "llava-asymlora",
                 "root": m.path, **m.describe()} for m in registry.models.values() for i in m.ids]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        _check_key(request, api_key)
        body = await request.body()
        if len(body) > body_cap:
            raise TooLarge(f"request body is {len(body) / MB:.0f} MB; this server takes up to {body_cap / MB:.0f} MB")
        req = oai.parse_chat_request(body)
        served, task_id = registry.resolve(req.model)  # an unknown model is refused before any image is decoded
        image = None
        if req.image_url is not None:
            image = await run_in_threadpool(load_image_url, req.image_url, limits)
        job = build_job(served, task_id, req.turns, req.image_turn, image, req.max_tokens, max_tokens_cap,
                        req.temperature, req.top_p, req.stop, req.system)
        model_id = req.model or registry.ids()[0]
        cid = oai.new_id()
        if not req.stream:
            engine.submit(job)
            result = await asyncio.wrap_future(job.result)
            return oai.completion(cid, model_id, result)
        pieces = _pieces_of(job)
        engine.submit(job)  # a full queue raises here, before the response starts: a plain 429
        return StreamingResponse(_stream(job, pieces, cid, model_id, req.include_usage),
                                 media_type="text/event-stream")

    return app


def _answer_errors_in_json(app: FastAPI) -> None:
    """The OpenAI error body for what the client got wrong, and for our bugs too (logged with the traceback)."""

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, e: ServeError):
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(Exception)
    async def server_error(request: Request, e: Exception):
        log.exception("internal error")
        return JSONResponse({"error": {"message": f"internal server error: {type(e).__name__}: {e}",
                                       "type": "server_error", "param": None, "code": None}}, status_code=500)


def _check_key(request: Request, api_key: str | None) -> None:
    if api_key is None:
        return
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
        raise Unauthorized("invalid or missing API key: send Authorization: Bearer <key>", code="invalid_api_key")


def _pieces_of(job: Job) -> asyncio.Queue:
    """The reply's text pieces as the engine thread makes them, then None."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue = asyncio.Queue()
    job.on_text = lambda text: loop.call_soon_threadsafe(pieces.put_nowait, text)
    job.result.add_done_callback(lambda _: loop.call_soon_threadsafe(pieces.put_nowait, None))
    return pieces


async def _stream(job: Job, pieces: asyncio.Queue, cid: str, model_id: str, include_usage: bool):
    def event(body: dict) -> str:
        return f"data: {json.dumps(body)}\n\n"

    try:
        yield event(oai.chunk(cid, model_id, {"role": "assistant", "content": ""}))
        while (text := await pieces.get()) is not None:
            yield event(oai.chunk(cid, model_id, {"content": text}))
        error = job.result.exception() if not job.result.cancelled() else None
        if error is not None:
            body = error.body() if isinstance(error, ServeError) else {"error": {
                "message": f"internal server error: {error}", "type": "server_error", "param": None, "code": None}}
            yield event(body)
        else:
            result = job.result.result()
            yield event(oai.chunk(cid, model_id, {}, result.finish_reason))
            if include_usage:
                yield event(oai.chunk(cid, model_id, {}, None, oai.usage(result.prompt_tokens, len(result.token_ids))))
        yield "data: [DONE]\n\n"
    finally:
        job.cancelled.set()  # the client went away (or the answer is whole): stop generating for it


def main(argv=None):
    import uvicorn

    from llava.serve.options import server_parser, start_serving

    ap = server_parser(__doc__, port=8000)
    ap.add_argument("--api-key", default=None, help="require Authorization: Bearer KEY (default: $LLAVA_API_KEY)")
    args = ap.parse_args(argv)
    registry, engine, limits, api_key = start_serving(ap, args)
    app = create_app(registry, engine, limits, api_key, args.max_tokens)
    print(f"OpenAI-compatible API at http://{args.host}:{args.port}/v1 ({len(registry.pending)} model(s) loading)",
          flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
