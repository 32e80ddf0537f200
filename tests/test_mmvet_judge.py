"""MM-Vet's judge against a stub OpenAI-compatible server on loopback: grades, retries, cache, configuration."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llava.eval.benchmarks import mmvet
from llava.eval.jsonl import write_jsonl
from llava.eval.judge import Judge, JudgeNotConfigured, parse_score
from tests.eval_fixtures import make_mmvet


class StubJudge:
    """Answers /chat/completions; the first `fail_first` requests get HTTP 500."""

    def __init__(self, reply="0.7", fail_first=1):
        self.requests, self.prompts = 0, []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests += 1
                if stub.requests <= fail_first:
                    self.send_response(500)
                    self.end_headers()
                    return
                assert self.headers["Authorization"] == "Bearer test-key" and self.path == "/v1/chat/completions"
                stub.prompts.append(body["messages"][0]["content"])
                payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    server = StubJudge()
    yield server
    server.close()


def answers(tmp_path):
    path = tmp_path / "answers.jsonl"
    write_jsonl([{"question_id": q, "prompt": "", "text": t, "model_id": "m", "metadata": {}}
                 for q, t in {"v1_0": "5", "v1_1": "a box", "v1_2": "a red\nsquare"}.items()], str(path))
    return str(path)


def test_grades_retry_and_cache(tmp_path, stub, monkeypatch):
    make_mmvet(str(tmp_path))
    monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("MMVET_JUDGE_BACKOFF", "0.01")
    m = mmvet.score(str(tmp_path), answers(tmp_path))
    assert stub.requests == 4  # one HTTP 500, retried, then one request per question
    assert m["total"] == 70.0 and m["rec"] == 70.0 and m["ocr"] == 70.0 and m["spat"] is None
    assert m["unparseable_grades"] == [] and m["cached_grades"] == 0
    assert stub.prompts[2].endswith("\nDescribe the picture. | a red square | a red square |")  # one table row
    again = mmvet.score(str(tmp_path), answers(tmp_path))
    assert stub.requests == 4 and again["cached_grades"] == 3 and again["total"] == 70.0  # re-run: no requests
    assert "| 70.0 | 70.0 | 70.0 | 70.0 | n/a | 70.0 | 70.0 |" in mmvet.markdown(again)


def test_unparseable_replies_are_counted(tmp_path, monkeypatch):
    make_mmvet(str(tmp_path))
    server = StubJudge(reply="excellent", fail_first=0)
    try:
        judge = Judge(base_url=server.url, api_key="test-key", retries=1, backoff=0.0)
        m = mmvet.score(str(tmp_path), answers(tmp_path), judge=judge)
    finally:
        server.close()
    assert sorted(m["unparseable_grades"]) == ["v1_0", "v1_1", "v1_2"] and m["total"] == 0.0
    assert server.requests == 6  # asked twice per question


def test_clear_error_when_unconfigured(tmp_path, monkeypatch):
    make_mmvet(str(tmp_path))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(JudgeNotConfigured, match="OPENAI_BASE_URL"):
        mmvet.score(str(tmp_path), answers(tmp_path))


def test_persistent_client_errors_are_not_retried_forever(tmp_path):
    server = StubJudge(fail_first=100)
    try:
        judge = Judge(base_url=server.url, api_key="test-key", retries=2, backoff=0.0)
        with pytest.raises(RuntimeError, match="HTTP 500"):
            judge.grade("prompt")
        assert server.requests == 3
    finally:
        server.close()


@pytest.mark.parametrize("reply,value", [("0.7", 0.7), ("1.0", 1.0), ("Score: 0.3", 0.3), ("0", 0.0), ("1", 1.0),
                                         ("great", None), ("7", None), ("0.75 maybe", 0.75)])
def test_parse_score(reply, value):
    assert parse_score(reply) == value
