"""The serving engine: batched greedy answers equal one-at-a-time ones, rows stop on their own, a full queue is a
429 (through the app), and the routing trace has one row of gate mass per reply token and layer."""

import threading
import time

import httpx
import pytest
import torch
from PIL import Image

from llava.adapters.attached import routing_state
from llava.serve.api import create_app
from llava.serve.engine import Engine, Job
from llava.serve.errors import Busy
from llava.serve.models import ModelRegistry
from llava.serve.prompt import render_conversation
from tests.helpers.serve import data_url, png_bytes

pytest.importorskip("fastapi", reason="the serve extra is part of `make install` (dev)")


@pytest.fixture(scope="module")
def registry(trained_tiny):
    asym = trained_tiny("asymlora", "--num_tasks", "-1", "--learning_rate", "5e-2")
    return ModelRegistry([f"asym={asym}"]).start(background=False)


def jobs_for(served, n, **kw):
    images = [Image.new("RGB", (30 + 3 * i, 30), (20 * i % 255, 90, 200)) for i in range(n)]
    questions = [f"what is shape number {i}?" for i in range(n)]
    return [Job(served, render_conversation(served.generator, [(0, q)], 0), im, 4 + i % 5, task_id=i % 3, **kw)
            for i, (q, im) in enumerate(zip(questions, images))]


def test_batched_answers_equal_one_at_a_time_and_rows_keep_their_limits(registry):
    served = registry.models["asym"]
    alone = Engine(max_batch=1)
    together = Engine(max_batch=16, window_s=0.2)
    singles = [alone.submit(j).result.result(60) for j in jobs_for(served, 12)]
    batched = [f.result.result(60) for f in [together.submit(j) for j in jobs_for(served, 12)]]
    assert max(r.batch_size for r in batched) > 1 and max(r.batch_size for r in singles) == 1
    for i, (a, b) in enumerate(zip(singles, batched)):
        assert (a.text, a.token_ids) == (b.text, b.token_ids)
        assert len(a.token_ids) <= 4 + i % 5
    # generate's own path: the same ids
    gen = served.generator
    j = jobs_for(served, 1)[0]
    assert gen.generate_ids([j.prompt], [j.image], 4, task_ids=[0])[0] == singles[0].token_ids


def test_stop_strings_cut_the_reply_and_streamed_pieces_add_up(registry):
    served = registry.models["asym"]
    engine = Engine()
    plain = engine.submit(jobs_for(served, 1)[0]).result.result(60)
    assert len(plain.text) > 3
    stop = plain.text[2:4]
    pieces = []
    job = jobs_for(served, 1, stop=(stop,))[0]
    job.on_text = pieces.append
    cut = engine.submit(job).result.result(60)
    assert cut.finish_reason == "stop" and cut.text == plain.text[:plain.text.index(stop)].strip()
    assert "".join(pieces) == cut.text


def test_routing_trace_has_gate_mass_per_token_and_layer(registry):
    served = registry.models["asym"]
    job = jobs_for(served, 1, trace=True)[0]
    result = Engine().submit(job).result.result(60)
    layers = served.generator.model.config.text_config.num_hidden_layers
    assert result.routing.shape == (len(result.token_ids), layers, served.config.num_experts)
    torch.testing.assert_close(result.routing.sum(-1), torch.ones(len(result.token_ids), layers))
    assert routing_state(served.generator.model).trace is None  # off again


def test_full_queue_is_429_and_cancelled_rows_stop(registry):
    served = registry.models["asym"]
    engine = Engine(max_batch=1, max_queue=2)
    release = threading.Event()
    blocker = jobs_for(served, 1)[0]
    blocker.max_new_tokens = 50
    blocker.on_text = lambda _: release.wait(30)  # holds the engine thread inside generate
    engine.submit(blocker)
    time.sleep(0.3)
    waiting = [engine.submit(j) for j in jobs_for(served, 2)]
    with pytest.raises(Busy):
        engine.submit(jobs_for(served, 1)[0])
    app = create_app(registry, engine)
    transport = httpx.ASGITransport(app=app)

    async def post():
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.post("/v1/chat/completions", json={
                "model": "asym:shape", "max_tokens": 3,
                "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(png_bytes())}},
                                                          {"type": "text", "text": "q?"}]}]})

    import asyncio

    r = asyncio.run(post())
    assert r.status_code == 429 and "retry later" in r.json()["error"]["message"]
    blocker.cancelled.set()
    release.set()
    assert blocker.result.result(60).finish_reason == "cancelled"
    assert all(j.result.result(60).text is not None for j in waiting)


def _post(app, body: dict):
    import asyncio

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return await c.post("/v1/chat/completions", json=body)

    return asyncio.run(go())


def _body(url, model="asym:shape"):
    return {"model": model, "max_tokens": 3, "temperature": 0, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "what shape is it?"}]}]}


def test_still_loading_and_out_of_memory_are_503_saying_so(registry, monkeypatch):
    loading = ModelRegistry(["later=/nowhere"])  # not started: its model is pending
    r = _post(create_app(loading, Engine()), _body(data_url(png_bytes()), "later"))
    assert r.status_code == 503 and "still loading" in r.json()["error"]["message"]
    gen = registry.models["asym"].generator

    def oom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(gen, "generate_ids", oom)
    r = _post(create_app(registry, Engine()), _body(data_url(png_bytes())))
    assert r.status_code == 503 and "out of memory" in r.json()["error"]["message"]


def test_remote_images_are_fetched_only_when_enabled(registry, tmp_path):
    import functools
    import http.server

    from llava.serve.images import ImageLimits

    Image.new("RGB", (20, 20), (1, 2, 3)).save(tmp_path / "x.png")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/x.png"
    try:
        refused = _post(create_app(registry, Engine()), _body(url))
        fetched = _post(create_app(registry, Engine(), ImageLimits(allow_remote=True)), _body(url))
        missing = _post(create_app(registry, Engine(), ImageLimits(allow_remote=True)), _body(url + ".gone"))
    finally:
        server.shutdown()
    assert refused.status_code == 403 and "--allow-remote-images" in refused.json()["error"]["message"]
    assert fetched.status_code == 200 and fetched.json()["choices"][0]["message"]["content"] is not None
    assert missing.status_code == 400 and "could not fetch" in missing.json()["error"]["message"]
