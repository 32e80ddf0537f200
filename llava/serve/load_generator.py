"""Load an OpenAI-compatible server: `python -m llava.serve.load_generator --url http://127.0.0.1:8000 --model ID`.

C clients, each sending its share of the requests one after another, all at the same moment (the official `openai`
client, async). Prints p50 / p95 latency and throughput; the answers come back in request order so two runs (say,
batched and one at a time) can be compared answer by answer.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import statistics
import time
from dataclasses import dataclass

from PIL import Image


def image_url(i: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (32 + 4 * (i % 8), 32), ((37 * i) % 256, (91 * i) % 256, 160)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def requests_for(models: list[str], n: int, max_tokens: int = 16) -> list[dict]:
    """n distinct greedy requests: images, questions, checkpoints/task heads and lengths all vary."""
    questions = ["what shape is it?", "what color is the shape?", "is there a circle?", "describe the image."]
    return [{"model": models[i % len(models)], "temperature": 0, "max_tokens": max_tokens // 2 + i % (max_tokens // 2 + 1),
             "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_url(i)}},
                                                       {"type": "text", "text": f"{questions[i % 4]} ({i})"}]}]}
            for i in range(n)]


@dataclass
class LoadResult:
    answers: list[str | None]
    latencies: list[float]
    errors: list[str]
    wall_s: float

    def summary(self) -> dict:
        lat = sorted(self.latencies)
        pick = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]) if lat else (lambda q: float("nan"))
        return {"requests": len(self.answers), "errors": len(self.errors), "wall_s": round(self.wall_s, 3),
                "throughput_rps": round(len(self.latencies) / self.wall_s, 2) if self.wall_s else 0.0,
                "p50_s": round(statistics.median(lat), 4) if lat else None, "p95_s": round(pick(0.95), 4)}


async def _run(url: str, requests: list[dict], clients: int, api_key: str) -> LoadResult:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0, timeout=600)
    answers: list[str | None] = [None] * len(requests)
    latencies, errors = [], []

    async def one_client(c: int):
        for i in range(c, len(requests), clients):
            start = time.perf_counter()
            try:
                r = await client.chat.completions.create(**requests[i])
                answers[i] = r.choices[0].message.content
                latencies.append(time.perf_counter() - start)
            except Exception as e:  # noqa: BLE001 - every failure is counted and reported, not raised
                errors.append(f"request {i}: {type(e).__name__}: {e}")

    start = time.perf_counter()
    await asyncio.gather(*(one_client(c) for c in range(clients)))
    wall = time.perf_counter() - start
    await client.close()
    return LoadResult(answers, latencies, errors, wall)


def run_load(url: str, requests: list[dict], clients: int, api_key: str = "none") -> LoadResult:
    return asyncio.run(_run(url, requests, clients, api_key))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8000")
    ap.add_argument("--model", action="append", required=True, help="model id; repeat to spread the requests")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests-per-client", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--api-key", default="none")
    args = ap.parse_args(argv)
    result = run_load(args.url, requests_for(args.model, args.clients * args.requests_per_client, args.max_tokens),
                      args.clients, args.api_key)
    print(json.dumps(result.summary()))
    for e in result.errors[:10]:
        print(e)


if __name__ == "__main__":
    main()
