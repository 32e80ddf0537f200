"""The OpenAI-compatible API, started as a user starts it, through the official `openai` client.

The checkpoint is trained by scripts/finetune_asymlora.sh on a model built from parts (CLIP dir + Llama dir +
mm_projector.bin) with task heads and routed experts; a second one is plain LoRA on the tiny preset. The server runs
with `--compile` (a static KV cache, bucketed shapes; the step compiled where the device allows): its greedy answers,
streamed and whole, equal `llava.eval.generate`'s eager ones.
"""

import io
import json
import os
import shutil

import httpx
import pytest
from PIL import Image

from llava.adapters.attached import adapter_config
from llava.eval.generate import main as generate_main
from tests.helpers.recipe_runs import finetune, recipe_parts
from tests.helpers.serve import data_url, png_bytes, start_server, stop_server

openai = pytest.importorskip("openai", reason="the serve extra (openai client) is part of `make install` (dev)")
KEY = "test-key"
QUESTIONS = ["what shape is it?", "what color is the shape?"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    parts = recipe_parts(tmp_path_factory)
    root = tmp_path_factory.mktemp("serve")
    finetune(parts, root / "asym", steps=2, extra="--num_tasks -1 --learning_rate 0.05")
    media = root / "media"
    media.mkdir()
    first = sorted(p for p in os.listdir(parts["images"]) if p.endswith(".png"))[0]
    shutil.copy(os.path.join(parts["images"], first), media / "q.png")
    proc, url = start_server("llava.serve.api", ["--model-path", f"asym={root / 'asym'}", "--api-key", KEY,
                                                 "--allowed-local-media-path", str(media), "--max-tokens", "64",
                                                 "--max-image-mb", "20", "--require-image", "--compile"],
                                root / "api.log")
    yield {"url": url, "ckpt": str(root / "asym"), "media": media, "root": root, "proc": proc}
    stop_server(proc)


def client(url, key=KEY):
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def messages(question, url):
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                         {"type": "text", "text": question}]}]


def generate_answers(ckpt, media, task, tmp):
    """llava.eval.generate's greedy answers to QUESTIONS about media/q.png with one task head."""
    qfile, afile = tmp / f"q-{task}.jsonl", tmp / f"a-{task}.jsonl"
    qfile.write_text("".join(json.dumps({"question_id": i, "image": "q.png", "text": q}) + "\n"
                             for i, q in enumerate(QUESTIONS)))
    generate_main(["--model-path", ckpt, "--question-file", str(qfile), "--answers-file", str(afile),
                   "--image-folder", str(media), "--task", task, "--max-new-tokens", "12"])
    return [json.loads(line)["text"] for line in afile.read_text().splitlines()]


def test_models_lists_one_id_per_task_head(served):
    ids = [m.id for m in client(served["url"]).models.list().data]
    assert ids == ["asym:shape", "asym:color", "asym:yesno"]


@pytest.mark.parametrize("task", ["shape", "color"])
def test_greedy_answers_equal_generate_streamed_and_whole(served, task, tmp_path):
    expected = generate_answers(served["ckpt"], served["media"], task, tmp_path)
    c = client(served["url"])
    image = data_url((served["media"] / "q.png").read_bytes())
    for question, answer in zip(QUESTIONS, expected):
        whole = c.chat.completions.create(model=f"asym:{task}", messages=messages(question, image), temperature=0,
                                          max_tokens=12)
        assert whole.choices[0].message.content == answer
        assert whole.usage.completion_tokens <= 12 and whole.choices[0].finish_reason in ("stop", "length")
        pieces = [ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
            model=f"asym:{task}", messages=messages(question, image), temperature=0, max_tokens=12, stream=True)
            if ch.choices]
        assert "".join(pieces) == answer
    # the same image named by a path under the allowed directory
    by_path = c.chat.completions.create(model=f"asym:{task}", messages=messages(QUESTIONS[0], str(served["media"] / "q.png")),
                                        temperature=0, max_tokens=12)
    assert by_path.choices[0].message.content == expected[0]


def test_task_heads_answer_differently(served):
    c = client(served["url"])
    image = data_url((served["media"] / "q.png").read_bytes())
    answers = {t: c.chat.completions.create(model=f"asym:{t}", messages=messages(QUESTIONS[0], image),
                                            temperature=0, max_tokens=12).choices[0].message.content
               for t in ("shape", "color", "yesno")}
    assert len(set(answers.values())) > 1, answers


def _big_png(size) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buf, "PNG")
    return buf.getvalue()


def bad_requests(served):
    """(what is wrong, request kwargs for httpx.post, expected status, words the message must hold)"""
    good_image = data_url(png_bytes())
    def body(**kw):
        return {"model": "asym:shape", "messages": messages("what shape is it?", good_image), "max_tokens": 4, **kw}
    outside = str(served["root"] / "api.log")
    return [
        ("a non-image file", {"json": body(messages=messages("q?", data_url(b"just some text, not a picture")))},
         400, "not an image"),
        ("a 60 MB image", {"json": body(messages=messages("q?", data_url(os.urandom(60 * 1024 * 1024))))},
         413, "20 MB"),
        ("a 20000x20 image", {"json": body(messages=messages("q?", data_url(_big_png((20000, 20)))))},
         400, "20000x20"),
        ("corrupt base64", {"json": body(messages=messages("q?", "data:image/png;base64,iVBOR#not*base64"))},
         400, "base64"),
        ("a prompt longer than the context", {"json": body(messages=messages("tell me " * 3000, good_image))},
         400, "maximum context length"),
        ("an unknown model", {"json": body(model="nope")}, 404, "does not exist"),
        ("an unknown task head", {"json": body(model="asym:nope")}, 404, "no task head"),
        ("a checkpoint with task heads named without one", {"json": body(model="asym")}, 400, "asym:shape"),
        ("a message without an image", {"json": body(messages=[{"role": "user", "content": "what shape?"}])},
         400, "image"),
        ("malformed JSON", {"content": b'{"model": "asym:shape", "messages": [', "headers": {
            "content-type": "application/json"}}, 400, "not valid JSON"),
        ("a wrong API key", {"json": body(), "key": "wrong"}, 401, "API key"),
        ("a path outside the allowed directory", {"json": body(messages=messages("q?", outside))}, 403,
         "outside the allowed directory"),
        ("a path escaping it with ..", {"json": body(messages=messages("q?", str(served["media"] / ".." / "api.log")))},
         403, "outside the allowed directory"),
        ("a remote URL (not enabled)", {"json": body(messages=messages("q?", "http://127.0.0.1:9/x.png"))}, 403,
         "--allow-remote-images"),
        ("max_tokens over the cap", {"json": body(max_tokens=100000)}, 400, "cap"),
        ("two images", {"json": body(messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": good_image}}, {"type": "image_url", "image_url": {"url": good_image}},
            {"type": "text", "text": "q?"}]}])}, 400, "one image"),
        ("n=2", {"json": body(n=2)}, 400, "not supported"),
    ]


def test_bad_input_is_a_4xx_with_a_clear_message_and_the_server_goes_on(served):
    url, c = served["url"], client(served["url"])
    good = messages("what shape is it?", data_url(png_bytes()))
    for what, kw, status, words in bad_requests(served):
        key = kw.pop("key", KEY)
        headers = {"authorization": f"Bearer {key}", **kw.pop("headers", {})}
        r = httpx.post(f"{url}/v1/chat/completions", headers=headers, timeout=120, **kw)
        assert r.status_code == status, (what, r.status_code, r.text[:300])
        error = r.json()["error"]
        assert words in error["message"], (what, error)
        assert error["type"] and served["proc"].poll() is None, what
        ok = c.chat.completions.create(model="asym:shape", messages=good, temperature=0, max_tokens=2)
        assert ok.choices[0].message.content is not None, what
    # the official client raises its typed errors for them
    with pytest.raises(openai.AuthenticationError):
        client(url, "wrong").chat.completions.create(model="asym:shape", messages=good, max_tokens=2)
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="nope", messages=good, max_tokens=2)


def test_multi_turn_equals_the_terminal_chat_and_the_stream_is_openai_sse(served):
    from llava.checkpoint import load_checkpoint_model
    from llava.inference import Generator
    from llava.serve.cli import Chat

    model, tokenizer, processor = load_checkpoint_model(served["ckpt"])
    generator = Generator(model, tokenizer, processor, "vicuna_v1", task_id=adapter_config(model).task_id("color"))
    with Image.open(served["media"] / "q.png") as im:
        chat = Chat(generator, im.convert("RGB"))
    first = chat.ask(QUESTIONS[0], max_new_tokens=10)
    second = chat.ask(QUESTIONS[1], max_new_tokens=10)
    image = data_url((served["media"] / "q.png").read_bytes())
    conversation = messages(QUESTIONS[0], image) + [{"role": "assistant", "content": first},
                                                    {"role": "user", "content": QUESTIONS[1]}]
    r = client(served["url"]).chat.completions.create(model="asym:color", messages=conversation, temperature=0,
                                                      max_tokens=10)
    assert r.choices[0].message.content == second
    # the raw stream: a role chunk, content chunks, a finish chunk, the usage chunk asked for, [DONE]
    with httpx.stream("POST", f"{served['url']}/v1/chat/completions", headers={"authorization": f"Bearer {KEY}"},
                      json={"model": "asym:color", "messages": conversation, "temperature": 0, "max_tokens": 10,
                            "stream": True, "stream_options": {"include_usage": True}}, timeout=60) as s:
        assert s.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: "):] for line in s.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == second
    assert chunks[-2]["choices"][0]["finish_reason"] in ("stop", "length")
    assert chunks[-1]["usage"]["completion_tokens"] == r.usage.completion_tokens
