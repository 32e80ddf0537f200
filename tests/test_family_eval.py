"""Another family than LLaVA-1.5 through evaluation: a tiny Gemma 3 AsymLoRA checkpoint answers every
scripts/eval/*.sh on the benchmark fixtures (MM-Vet graded by a stub judge) through its own chat template, and the
lmms-eval plugin answers exactly as llava.eval.generate does."""

import io
import json
import os
import subprocess
import sys

import pytest

from llava.train.train import train
from tests.helpers.data import write_small_data
from tests.helpers.eval_fixtures import make_all
from tests.helpers.judge import StubJudge
from tests.helpers.vlm_families import save_family
from tests.test_family_training import family_args
from tests.test_lmms_eval_plugin import TASK, generate_answers, responses, write_task

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("family-eval")
    out = tmp / "out"
    train(family_args(save_family(tmp / "model", "gemma3"), write_small_data(tmp / "data"), out, steps=4))
    return out


def test_every_eval_script_answers_with_a_family_checkpoint(checkpoint, tmp_path):
    make_all(str(tmp_path / "data"))
    stub = StubJudge(reply="0.4")
    env = {**os.environ, "PYTHON": sys.executable, "EVAL_ROOT": str(tmp_path / "data"), "RUNS_DIR": str(tmp_path / "runs"),
           "BATCH": "4", "OPENAI_BASE_URL": stub.url, "OPENAI_API_KEY": "test-key"}
    try:
        for script in ("mme", "gqa", "textvqa", "vizwiz", "mmvet"):
            proc = subprocess.run(["bash", f"scripts/eval/{script}.sh", str(checkpoint), "gemma3-asymlora"], cwd=ROOT,
                                  env=env, capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, (script, proc.stdout[-2000:] + proc.stderr[-3000:])
    finally:
        stub.close()
    metrics = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "runs" / "gemma3-asymlora").glob("*.json")}
    assert set(metrics) == {"mme", "gqa", "textvqa", "vizwiz", "mmvet"}
    rows = [json.loads(line) for line in (tmp_path / "data" / "MME" / "answers" / "gemma3-asymlora.jsonl").open()]
    assert len(rows) == 12 and all(r["metadata"]["conv_mode"] == "chat_template" for r in rows)
    assert all("<start_of_turn>user\n" in r["metadata"]["full_prompt"] for r in rows)  # the model's own template


def test_the_lmms_eval_plugin_answers_as_generate_with_a_family_checkpoint(checkpoint, tmp_path):
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager

    rows = write_task(tmp_path)
    results = simple_evaluate(model="llava_asymlora", model_args=f"pretrained={checkpoint}", tasks=[TASK], batch_size=3,
                              task_manager=TaskManager(include_path=str(tmp_path)), log_samples=True)
    assert responses(results["samples"][TASK]) == generate_answers(checkpoint, rows, tmp_path)


def test_the_api_answers_as_the_generator_with_a_family_checkpoint(checkpoint, tmp_path):
    """The OpenAI-compatible server renders a family's conversation with its own chat template: a greedy answer about
    an image equals llava.inference's, whole and streamed, and the usage counts the processor's image tokens."""
    import httpx
    from PIL import Image

    from llava.inference import Generator
    from tests.helpers.serve import data_url, png_bytes, start_server, stop_server

    generator = Generator.from_checkpoint(str(checkpoint), device="cpu", dtype="fp32")
    prompt, image = generator.prompt_for("what colour is it?", True), Image.open(io.BytesIO(png_bytes())).convert("RGB")
    want = generator.decode(generator.generate_ids([prompt], [image], 6)[0])
    proc, url = start_server("llava.serve.api", ["--model-path", f"gemma3={checkpoint}", "--device", "cpu",
                                                 "--dtype", "fp32"], tmp_path / "api.log")
    try:
        body = {"model": "gemma3", "max_tokens": 6, "temperature": 0, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what colour is it?"}, {"type": "image_url", "image_url": {"url": data_url(png_bytes())}}]}]}
        reply = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120).json()
        assert reply["choices"][0]["message"]["content"] == want, reply
        assert reply["usage"]["prompt_tokens"] == len(generator.encode(prompt, image))
        with httpx.stream("POST", f"{url}/v1/chat/completions", json={**body, "stream": True}, timeout=120) as stream:
            chunks = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: {")]
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == want
    finally:
        stop_server(proc)


def test_the_web_chat_answers_and_shows_routing_with_a_family_checkpoint(checkpoint, tmp_path):
    """The web chat (gradio_client, as tests/test_serve_web.py drives it) with a family's checkpoint: the streamed
    answer about an image is llava.inference's greedy one, and the routing view shows each routed layer's experts."""
    import re

    from PIL import Image

    from llava.inference import Generator
    from tests.helpers.serve import start_server, stop_server

    gradio_client = pytest.importorskip("gradio_client", reason="the serve extra is part of `make install` (dev)")
    Image.new("RGB", (48, 40), (200, 40, 40)).save(tmp_path / "red.png")
    generator = Generator.from_checkpoint(str(checkpoint), device="cpu", dtype="fp32")
    with Image.open(tmp_path / "red.png") as im:
        image = im.convert("RGB")
    want = generator.decode(generator.generate_ids([generator.prompt_for("what colour is it?", True)], [image], 8)[0])
    proc, url = start_server("llava.serve.web", ["--model-path", f"gemma3={checkpoint}", "--max-tokens", "64"],
                             tmp_path / "web.log")
    try:
        client = gradio_client.Client(url, verbose=False)
        job = client.submit("gemma3", gradio_client.handle_file(str(tmp_path / "red.png")), [], "what colour is it?", 0,
                            1, 8, "summed over layers", api_name="/chat")
        history, _, error, tokens, heatmap, _ = job.result(timeout=120)
    finally:
        stop_server(proc)
    assert want and error == "" and history[-1]["content"][0]["text"] == want
    layers = len(re.findall(r"<th[^>]*>layer \d+</th>", heatmap))
    assert layers == 2 and heatmap.count("heat-cell") == layers * 3  # 2 decoder layers, 3 experts each
    assert tokens.count("routed-token") >= 1
