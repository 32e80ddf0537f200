"""The web chat (`python -m llava.serve.web`), started as a user starts it: through gradio_client, and in a real
headless Chromium (Debian's `chromium`, driven by Playwright) that uploads an image, asks, reads the streamed
answer, the routing heatmap and the A/B pair, and saves a screenshot."""

import os
import re
import shutil
import time

import pytest
from PIL import Image

from llava.serve.models import load_served
from llava.serve.prompt import render_conversation
from tests.helpers.serve import start_server, stop_server

gradio_client = pytest.importorskip("gradio_client", reason="the serve extra is part of `make install` (dev)")
QUESTION = "what shape is it?"


@pytest.fixture(scope="module")
def web(tmp_path_factory, trained_tiny):
    root = tmp_path_factory.mktemp("web")
    (root / "asym").symlink_to(trained_tiny("asymlora", "--num_tasks", "-1", "--learning_rate", "5e-2"))
    (root / "lora").symlink_to(trained_tiny("lora"))
    Image.new("RGB", (48, 40), (200, 40, 40)).save(root / "red.png")
    Image.new("RGB", (3000, 20), (0, 0, 0)).save(root / "strip.png")
    proc, url = start_server("llava.serve.web", ["--model-path", f"asym={root / 'asym'}", "--model-path",
                                                 f"lora={root / 'lora'}", "--max-image-side", "2048", "--max-tokens", "64"],
                             root / "web.log")
    yield {"url": url, "root": root, "proc": proc}
    stop_server(proc)


def expected(root, name, task=None, question=QUESTION, max_tokens=8):
    """The greedy answer llava.eval.generate's Generator gives to one question about red.png."""
    served = load_served(name, str(root / name))
    gen = served.generator
    with Image.open(root / "red.png") as im:
        image = im.convert("RGB")
    task_id = served.config.task_id(task) if task else None
    prompt = render_conversation(gen, [(0, question)], 0)
    assert prompt == gen.prompt_for(question, True)
    return gen.decode(gen.generate_ids([prompt], [image], max_tokens, task_ids=[task_id])[0])


def test_gradio_client_chat_streams_the_answer_routing_and_ab(web):
    client = gradio_client.Client(web["url"], verbose=False)
    image = gradio_client.handle_file(str(web["root"] / "red.png"))
    job = client.submit("asym:color", image, [], QUESTION, 0, 1, 8, "summed over layers", api_name="/chat")
    final = job.result(timeout=120)
    history, _, error, tokens, heatmap, _ = final
    assert error == ""
    answer = history[-1]["content"][0]["text"]
    assert answer == expected(web["root"], "asym", "color")
    assert len(job.outputs()) >= 3  # the reply streamed in pieces before the routing came
    layers = len(re.findall(r"<th[^>]*>layer \d+</th>", heatmap))
    assert layers == 2 and heatmap.count("heat-cell") == layers * 3
    assert tokens.count("routed-token") >= 1
    a, b, heat_a, heat_b, ab_error = client.predict("asym:shape", "lora", image, QUESTION, 0, 1, 8, api_name="/ab")
    assert ab_error == "" and (a, b) == (expected(web["root"], "asym", "shape"), expected(web["root"], "lora"))
    assert "heat-cell" in heat_a and "no per-token router" in heat_b


def test_multi_turn_regenerate_and_clear(web):
    client = gradio_client.Client(web["url"], verbose=False)
    image = gradio_client.handle_file(str(web["root"] / "red.png"))
    history, *_ = client.predict("asym:shape", image, [], QUESTION, 0, 1, 6, "summed over layers", api_name="/chat")
    history, *_ = client.predict("asym:shape", image, history, "and its color?", 0, 1, 6, "summed over layers",
                                 api_name="/chat")
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    again, *_ = client.predict("asym:shape", image, history, 0, 1, 6, "summed over layers", api_name="/regenerate")
    assert again == history  # greedy: the same second reply, the first turn kept
    cleared, message, error, tokens, heatmap, view = client.predict(api_name="/clear")
    assert cleared == [] and "no routing" in tokens


def test_errors_are_shown_in_the_app(web):
    client = gradio_client.Client(web["url"], verbose=False)
    red = gradio_client.handle_file(str(web["root"] / "red.png"))
    strip = gradio_client.handle_file(str(web["root"] / "strip.png"))
    cases = [(("nope", red, [], QUESTION), "does not exist"),
             (("asym", red, [], QUESTION), "task heads"),
             (("asym:shape", strip, [], QUESTION), "3000x20"),
             (("asym:shape", red, [], "why " * 2000), "maximum context length")]
    for (model, image, history, message), words in cases:
        _, _, error, _, _, _ = client.predict(model, image, history, message, 0, 1, 8, "summed over layers",
                                              api_name="/chat")
        assert words in error, (model, words, error)
    history, *_ = client.predict("asym:shape", red, [], QUESTION, 0, 1, 4, "summed over layers", api_name="/chat")
    assert history[-1]["role"] == "assistant"  # still answering


def _browser_path():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def _ask(page, model_box, model, image_box, image, text_box, button):
    """Pick a model, upload an image, type the question and press the button, as a user does."""
    page.locator(f"{model_box} input").fill(model)
    page.locator(f"{model_box} input").press("Enter")
    page.locator(f"{image_box} input[type=file]").set_input_files(image)
    page.locator(f"{image_box} img").wait_for(timeout=30000)
    page.locator(f"{text_box} textarea").fill(QUESTION)
    page.locator(button).click()


@pytest.mark.slow
def test_browser_uploads_asks_and_sees_routing_and_ab(web, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is part of `make install` (dev)")
    browser_path = _browser_path()
    if browser_path is None:
        pytest.skip("no Chromium on this machine: apt-get install chromium (make install does it where it may)")
    red = str(web["root"] / "red.png")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(web["url"])
        page.wait_for_selector("#send")
        _ask(page, "#model", "asym:color", "#image", red, "#message", "#send")
        page.locator(".routing-heatmap table").wait_for(timeout=60000)
        want = expected(web["root"], "asym", "color", max_tokens=64)
        bot = page.locator("#chatbot .message-row.bot-row, #chatbot [data-testid=bot]").last
        assert bot.inner_text().strip() == want
        assert page.locator(".routed-token").count() >= 1
        assert page.locator(".heat-cell").count() == 2 * 3
        shot = tmp_path / "web_chat.png"
        page.screenshot(path=str(shot), full_page=True)
        page.get_by_role("tab", name="A/B").click()
        _ask(page, "#model-a", "asym:shape", "#ab-image", red, "#ab-question", "#ab-ask")
        page.wait_for_function("document.querySelector('#answer-b textarea').value.length > 0", timeout=60000)
        page.locator("#heat-a .routing-heatmap").wait_for(timeout=60000)
        a = page.locator("#answer-a textarea").input_value()
        b = page.locator("#answer-b textarea").input_value()
        assert (a, b) == (expected(web["root"], "asym", "shape", max_tokens=64),
                          expected(web["root"], "lora", max_tokens=64))
        page.screenshot(path=str(tmp_path / "web_ab.png"), full_page=True)
        browser.close()
    assert shot.stat().st_size > 10_000
    if out := os.environ.get("LLAVA_SCREENSHOT_DIR"):  # how docs/images/ gets its screenshots
        shutil.copy(shot, os.path.join(out, "web_chat.png"))
        shutil.copy(tmp_path / "web_ab.png", os.path.join(out, "web_ab.png"))


def test_odd_uploads_get_an_answer_or_a_message(web, tmp_path):
    """Uploads of every image format and PIL mode, animated, transparent, truncated, bit-flipped and a decompression
    bomb (tests/fuzz_strategies.py builds them): the app answers or shows a message, keeps serving, and the server
    logs no traceback."""
    from hypothesis import find, settings

    from tests.helpers.fuzz_strategies import bomb_png, image_files

    files = {"bomb.png": bomb_png()}
    for what in ("PNG I;16", "PNG P", "JPEG CMYK", "GIF P", "WEBP RGBA", "TIFF F", "truncate", "flip"):
        _, data = find(image_files(), lambda case, w=what: w in case[0], settings=settings(database=None, max_examples=5000))
        files[f"{len(files)}.{what.split()[0].lower()}"] = data
    client = gradio_client.Client(web["url"], verbose=False)
    errors = {}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        history, _, errors[name], *_ = client.predict("asym:shape", gradio_client.handle_file(str(tmp_path / name)),
                                                      [], QUESTION, 0, 1, 4, "summed over layers", api_name="/chat")
        assert errors[name] or history[-1]["role"] == "assistant", name
    assert "pixels a side" in errors["bomb.png"]
    print({name: error[:80] for name, error in errors.items()})
    history, *_ = client.predict("asym:shape", gradio_client.handle_file(str(web["root"] / "red.png")), [], QUESTION,
                                 0, 1, 4, "summed over layers", api_name="/chat")
    assert history[-1]["role"] == "assistant"
    assert "Traceback" not in (web["root"] / "web.log").read_text()


@pytest.mark.slow
def test_the_status_line_follows_loading_without_a_reload(tmp_path):
    """A page opened while a model loads says so, then shows the model once it has loaded, with no click."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is part of `make install` (dev)")
    browser_path = _browser_path()
    if browser_path is None:
        pytest.skip("no Chromium on this machine: apt-get install chromium (make install does it where it may)")
    from llava.serve.engine import Engine
    from llava.serve.images import ImageLimits
    from llava.serve.models import ModelRegistry
    from llava.serve.web import build_app
    from llava.serve.web_chat import WebChat
    from tests.helpers.recipe_runs import free_port

    registry = ModelRegistry(["late=tiny"])  # not started yet: the model is pending
    engine = Engine(1, 0.0, 4)
    app = build_app(WebChat(registry, engine, ImageLimits(), 16))
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=browser_path, headless=True)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}")
            status = page.locator("#status")
            status.get_by_text("still loading").wait_for(timeout=30000)
            time.sleep(3)  # the page's own load event has answered (still loading): only a later refresh can help
            assert "still loading" in status.inner_text()
            registry.start()  # loads in the background, as the server does
            page.wait_for_function("!document.querySelector('#status').innerText.includes('still loading')",
                                   timeout=30000)
            assert status.inner_text().startswith("late: none"), status.inner_text()  # the tiny preset: no adapters
            browser.close()
    finally:
        app.close()
