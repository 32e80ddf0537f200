"""Serving under load: batched vs one-at-a-time, 32 concurrent clients x 4 requests each (tiny preset, CPU).

python bench/serve_load.py [--clients 32] [--per-client 4] [--max-tokens 16]

Trains a tiny routed AsymLoRA checkpoint with task heads (2 steps), starts `python -m llava.serve.api` twice on it,
one after the other: with batching (--max-batch 32, 10 ms window) and one request per generate (--max-batch 1).
The same requests (images, questions, task heads and lengths vary; greedy) go to each. Prints each server's
p50 / p95 latency and throughput and, last, one JSON object with `throughput_ratio` (batched / one at a time) and
`answers_equal` (every batched answer equals the one-at-a-time answer to the same request).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time

import httpx
from PIL import Image

from llava.serve.load_generator import requests_for, run_load
from llava.train.train import train


def build_checkpoint(root: str) -> str:
    images = os.path.join(root, "images")
    os.makedirs(images)
    rows = []
    for i in range(24):
        Image.new("RGB", (40 + 4 * (i % 4), 40), (60 * (i % 4), 90, 200)).save(os.path.join(images, f"{i}.png"))
        task = ("shape", "color", "yesno")[i % 3]
        rows.append({"id": str(i), "image": f"{i}.png", "task": task, "conversations": [
            {"from": "human", "value": f"<image>\nwhat {task} is it?"}, {"from": "gpt", "value": ["a", "b"][i % 2]}]})
    data = os.path.join(root, "data.json")
    with open(data, "w") as f:
        json.dump(rows, f)
    out = os.path.join(root, "asym")
    train(["--model_name_or_path", "tiny", "--data_path", data, "--image_folder", images, "--output_dir", out,
           "--lora_enable", "True", "--lora_r", "4", "--lora_alpha", "8", "--adapter_scheme", "asymlora",
           "--num_experts", "3", "--router_scope", "mlp_block", "--mixture_targets", "gate_proj,up_proj,down_proj",
           "--num_tasks", "-1", "--per_device_train_batch_size", "4", "--learning_rate", "5e-2", "--max_steps", "2",
           "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "True", "--use_cpu", "True"])
    return out


def serve(checkpoint: str, max_batch: int, log: str):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "llava.serve.api", "--model-path", f"asym={checkpoint}",
                             "--port", str(port), "--max-batch", str(max_batch), "--wait-for-models"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=2).json()["status"] == "ok":
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"server did not start; see {log}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--per-client", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=16)
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="serve-load-")
    checkpoint = build_checkpoint(root)
    for noisy in ("httpx", "httpx2", "openai"):  # training set INFO logging; one line per request is noise here
        logging.getLogger(noisy).setLevel(logging.WARNING)
    requests = requests_for(["asym:shape", "asym:color", "asym:yesno"], args.clients * args.per_client,
                            args.max_tokens)
    results = {}
    for name, max_batch in (("batched", 32), ("one_at_a_time", 1)):
        proc, url = serve(checkpoint, max_batch, os.path.join(root, f"{name}.log"))
        try:
            run_load(url, requests[: args.clients], args.clients)  # warm-up
            results[name] = run_load(url, requests, args.clients)
        finally:
            proc.terminate()
            proc.wait()
        print(name, json.dumps(results[name].summary()), flush=True)
    batched, single = results["batched"], results["one_at_a_time"]
    print(json.dumps({
        "clients": args.clients, "requests": len(requests), "max_tokens": args.max_tokens,
        "batched": batched.summary(), "one_at_a_time": single.summary(),
        "throughput_ratio": round(single.wall_s / batched.wall_s, 2),
        "answers_equal": batched.answers == single.answers,
        "errors": len(batched.errors) + len(single.errors),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads default"}))


if __name__ == "__main__":
    main()
