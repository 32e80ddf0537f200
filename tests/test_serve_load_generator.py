"""32 clients x 4 requests at once against `llava.serve.api`: zero errors, every answer equal to the same request
sent alone, and the requests were batched (fewer generate calls than requests). Throughput: bench/serve_load.py."""

import httpx
import pytest

from llava.serve.load_generator import requests_for, run_load
from tests.helpers.serve import start_server, stop_server

pytest.importorskip("openai", reason="the serve extra is part of `make install` (dev)")


@pytest.mark.slow
def test_32_clients_get_the_answers_a_sequential_run_gets(tmp_path, trained_tiny):
    asym = trained_tiny("asymlora", "--num_tasks", "-1", "--learning_rate", "5e-2")
    proc, url = start_server("llava.serve.api", ["--model-path", f"asym={asym}"], tmp_path / "api.log")
    try:
        requests = requests_for(["asym:shape", "asym:color", "asym:yesno"], 32 * 4)
        sequential = run_load(url, requests, clients=1)
        batches_before = httpx.get(f"{url}/health").json()["batches_run"]
        loaded = run_load(url, requests, clients=32)
        batches = httpx.get(f"{url}/health").json()["batches_run"] - batches_before
    finally:
        stop_server(proc)
    assert sequential.errors == [] and loaded.errors == []
    assert batches_before == 128 and batches < 128 / 4, batches  # alone: one generate each; at load: batched
    assert loaded.answers == sequential.answers
    assert len(set(loaded.answers)) > 10
