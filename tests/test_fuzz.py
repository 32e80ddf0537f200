"""Inputs nobody listed, generated (hypothesis): every request to the API, image file, training record and JSONL line
ends in a 200, a 4xx with OpenAI's error body, a named fault or a counted skip; never a 5xx or a traceback.

CI runs each property with a fixed seed and a bounded number of examples; `pytest tests/test_fuzz.py --fuzz-long 10`
runs each with fresh seeds for 10 minutes (by hand) and prints how many examples it tried.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from llava.data import DataError
from llava.data.dataset import open_image
from llava.data.preflight import check_image
from llava.eval.benchmarks.common import read_answers
from llava.eval.generate import answered_ids, read_questions
from llava.model.image import ImageTransform, clip_image_processor
from llava.serve.errors import ServeError
from llava.serve.images import ImageLimits, decode_image
from llava.serve.jobs import check_image_size
from tests.helpers.fuzz_strategies import BODIES, JSON, bomb_png, data_url, encode_json, image_files, small_png

LIMITS = ImageLimits(max_bytes=1024 * 1024, max_side=1024)


def fuzz(pytestconfig, prop, strategy, examples: int) -> int:
    """Run `prop` over `strategy`: CI: `examples` with a fixed seed; --fuzz-long M: fresh seeds for M minutes.
    Returns the number of examples tried."""
    tried = [0]

    def counted(value):
        tried[0] += 1
        prop(value)

    common = dict(database=None, deadline=timedelta(seconds=20), print_blob=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                         HealthCheck.filter_too_much])
    minutes = pytestconfig.getoption("--fuzz-long")
    if not minutes:
        settings(max_examples=examples, derandomize=True, **common)(given(strategy)(counted))()
        return tried[0]
    end = time.monotonic() + 60 * minutes
    while time.monotonic() < end:
        settings(max_examples=500, **common)(given(strategy)(counted))()
    print(f"\n{prop.__name__}: {tried[0]} examples in {minutes} min")
    return tried[0]


# --- the API ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api():
    from fastapi.testclient import TestClient

    from llava.serve.api import create_app
    from llava.serve.engine import Engine
    from llava.serve.models import ModelRegistry

    registry = ModelRegistry(["tiny"], device="cpu", dtype="fp32").start(background=False)
    app = create_app(registry, Engine(max_batch=4, window_s=0.001), LIMITS, max_tokens_cap=2)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


GOOD = {"model": "tiny", "max_tokens": 2, "messages": [
    {"role": "user", "content": [{"type": "text", "text": "what is it?"},
                                 {"type": "image_url", "image_url": {"url": data_url(small_png())}}]}]}


def post(api, body: bytes):
    return api.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})


def assert_client_answer(r) -> None:
    """200, or a 4xx with OpenAI's error body; a 200 stream carries no server error."""
    assert r.status_code == 200 or 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code == 200:
        assert "server_error" not in r.text, r.text[:300]
    else:
        error = r.json()["error"]
        assert isinstance(error["message"], str) and error["message"] and isinstance(error["type"], str), r.text


def test_any_request_body_gets_a_200_or_a_4xx_and_the_server_still_answers(api, pytestconfig, caplog):
    def request_is_answered(body: bytes):
        assert_client_answer(post(api, body))

    tried = fuzz(pytestconfig, request_is_answered, BODIES, 500)
    assert tried >= 300
    assert post(api, encode_json(GOOD)).status_code == 200
    assert "internal error" not in caplog.text  # the API's 500 handler logs "internal error" with a traceback


@pytest.mark.parametrize("case,body,words", [
    ("a 30000 x 30000 PNG of a few hundred bytes", {**GOOD, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": data_url(bomb_png())}}]}]},
     "pixels a side"),
    ("a lone surrogate in a text part", {**GOOD, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what \udcff is it?"}]}]}, "lone surrogate"),
])
def test_the_two_verified_defects_are_400s_with_a_clear_message(api, caplog, case, body, words):
    r = post(api, encode_json(body))
    assert r.status_code == 400 and words in r.json()["error"]["message"], (case, r.status_code, r.text[:300])
    assert "Traceback" not in caplog.text and "internal error" not in caplog.text


@pytest.mark.parametrize("temperature", [1.0915890836923808e-124, 5e-324, 1e-6])
def test_a_vanishing_temperature_is_greedy_not_a_500(api, caplog, temperature):
    """Found by the long fuzz run: temperature 1e-124 overflowed the scaled logits to inf / nan and sampling failed
    (500). Below 1e-5 (vLLM's threshold) decoding is greedy: the answer of temperature 0."""
    body = {**GOOD, "max_tokens": 2, "messages": [{"role": "user", "content": "what is it?"}]}
    r = post(api, encode_json({**body, "temperature": temperature}))
    assert r.status_code == 200, r.text[:300]
    greedy = post(api, encode_json({**body, "temperature": 0})).json()["choices"][0]["message"]["content"]
    assert r.json()["choices"][0]["message"]["content"] == greedy
    assert "internal error" not in caplog.text


@pytest.mark.parametrize("where", ["assistant", "system"])
def test_a_typed_image_placeholder_in_any_message_is_text_not_a_500(api, caplog, where):
    """Found by the long fuzz run: '<image>' in an assistant (or system) message became a second image token for one
    image (500, "Image features and image tokens do not match"). Typed placeholders are removed in every message."""
    image = {"type": "image_url", "image_url": {"url": data_url(small_png())}}
    if where == "assistant":
        messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "<image>"},
                    {"role": "user", "content": [image]}]
    else:
        messages = [{"role": "system", "content": "see <image> below"}, {"role": "user", "content": [image]}]
    r = post(api, encode_json({**GOOD, "messages": messages}))
    assert r.status_code == 200, r.text[:300]
    assert "internal error" not in caplog.text


def test_a_bomb_is_refused_from_its_header_without_decoding_it():
    """Refused before a pixel is decoded: the process's peak memory does not grow by the bomb's size (900 MB)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for data in (bomb_png(30000, 30000), bomb_png(60000, 20)):
        with pytest.raises(ServeError) as refused:
            decode_image(data, LIMITS)
        assert refused.value.status == 400 and "pixels a side" in str(refused.value)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 50, grown_mb


# --- images ----------------------------------------------------------------------------------------------------
def test_any_image_file_is_decoded_or_refused_by_every_reader(pytestconfig, tmp_path):
    """The API's decoder (4xx or an RGB image), the training pre-flight (a named fault or none) and the training
    loader (a DataError naming the sample, or the image the model transform takes), a browser upload once PIL has
    decoded it (the web app's side check, then the model transform). A bomb is refused from its header."""
    from transformers import CLIPImageProcessor

    transform = ImageTransform(CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}))
    path = tmp_path / "image"

    def every_reader_copes(case):
        what, data = case
        try:
            image = decode_image(data, LIMITS)
            assert image.mode == "RGB"
        except ServeError as e:
            assert 400 <= e.status < 500, (what, e.status)
        path.write_bytes(data)
        fault = check_image(str(path))
        assert fault is None or str(path) in fault, (what, fault)
        try:
            decoded = open_image(str(path), "sample 0")
        except DataError as e:
            assert "sample 0" in str(e) and str(path) in str(e), (what, e)
            return
        if max(decoded.size) <= 4096:
            try:
                check_image_size(decoded, LIMITS)
            except ServeError as e:
                assert e.status == 400
            assert tuple(transform(decoded).shape) == (3, 32, 32), what

    tried = fuzz(pytestconfig, every_reader_copes, image_files(), 300)
    assert tried >= 200


# --- training records -------------------------------------------------------------------------------------------
def test_any_training_record_is_kept_or_named_and_the_good_ones_are_kept(pytestconfig, tmp_path_factory,
                                                                         tiny_tokenizer):
    """Generated LLaVA records (wrong types, missing and extra fields, roles out of order, <image> counts that do not
    match, bad or missing images, non-UTF-8 bytes, cut lines) mixed with good ones, as a JSON list or JSONL: the
    structural read and the pre-flight name each bad record by file and sample; every good record is kept."""
    from llava.data import SupervisedDataset
    from llava.data.preflight import preflight
    from tests.helpers.fuzz_strategies import ANY_RECORDS, GOOD_RECORDS

    folder = tmp_path_factory.mktemp("records")
    for k in range(2):
        Image.new("RGB", (20 + k, 20), (40 * k, 90, 200)).save(folder / f"ok{k}.png")
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    transform = ImageTransform(clip_image_processor(32))
    mixtures = st.tuples(st.lists(GOOD_RECORDS, max_size=3, unique_by=lambda r: r["id"]),
                         st.lists(ANY_RECORDS, max_size=4), st.sampled_from(["json", "jsonl"]),
                         st.lists(st.binary(min_size=1, max_size=12), max_size=2), st.randoms(use_true_random=False))

    def records_are_kept_or_named(case):
        good, other, kind, raw_lines, rng = case
        rows = [(r, True) for r in good] + [(r, False) for r in other]
        rng.shuffle(rows)
        path = folder / f"data.{kind}"
        if kind == "json":
            path.write_bytes(json.dumps([r for r, _ in rows]).encode())
        else:
            lines = [json.dumps(r).encode() for r, _ in rows] + raw_lines
            path.write_bytes(b"\n".join(lines) + b"\n")
        try:
            ds = SupervisedDataset(str(path), tiny_tokenizer, transform, image_folder=str(folder), image_seq_length=16,
                                   model_max_length=256, skip_bad=True, defer_errors=True)
        except DataError as e:
            assert str(path) in str(e), e
            assert not good or kind == "json", e  # a JSON file that is not a list of records is refused whole
            return
        bad = preflight(ds, workers=0, show_progress=False, use_cache=False)
        for where, _ in ds.report.skipped:
            assert str(path) in where, where
        for b in bad:
            assert b.file == str(path) and b.sample_id is not None, b
        named = {b.index for b in bad}
        kept = [ds.records[i] for i in range(len(ds)) if i not in named]
        kept_ids = {r.sample_id for r in kept}
        assert {r["id"] for r in good} <= kept_ids, (kept_ids, good)
        for i in range(len(ds)):
            if i in named:
                continue
            try:
                ds[i]  # what training fetches: tokens and pixels, or a DataError naming the sample
            except DataError as e:
                assert str(path) in str(e), e

    tried = fuzz(pytestconfig, records_are_kept_or_named, mixtures, 120)
    assert tried >= 60


# --- evaluation files -------------------------------------------------------------------------------------------
def test_any_answer_or_question_line_is_read_or_named(pytestconfig, tmp_path):
    """Answer files (the scorers' input) and question files: a malformed, non-UTF-8, cut or mistyped line is a
    ValueError naming the file and the line; a well-formed file is read."""
    path = tmp_path / "rows.jsonl"
    lines = st.lists(JSON.map(encode_json) | st.binary(max_size=20)
                     | st.fixed_dictionaries({"question_id": JSON, "text": JSON}, optional={"image": JSON,
                                                                                           "unanswered": JSON})
                     .map(encode_json), max_size=5)

    def every_line_is_read_or_named(rows):
        path.write_bytes(b"\n".join(r.replace(b"\n", b" ") for r in rows) + b"\n")
        for reader in (read_answers, read_questions, answered_ids):
            try:
                reader(str(path))
            except ValueError as e:
                assert str(path) in str(e) and "line" in str(e), (reader.__name__, e)

    tried = fuzz(pytestconfig, every_line_is_read_or_named, lines, 300)
    assert tried >= 100
