"""MM-Vet's judge against a stub OpenAI-compatible server on loopback: grades, retries, cache, configuration; the
text sent to the judge and the grade read from its reply checked against the installed lmms-eval's own code."""


import pytest

from llava.eval.benchmarks import mmvet, mmvet_grader
from llava.eval.jsonl import write_jsonl
from llava.eval.judge import Judge, JudgeNotConfigured
from tests.helpers.eval_fixtures import make_mmvet
from tests.helpers.judge import StubJudge


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
    m = mmvet.score(str(tmp_path), answers(tmp_path))
    assert stub.requests == 4  # one HTTP 500, retried, then one request per question
    assert m["total"] == 70.0 and m["rec"] == 70.0 and m["ocr"] == 70.0 and m["spat"] is None
    assert m["unparseable_grades"] == [] and m["cached_grades"] == 0
    assert stub.prompts[2].endswith("\nDescribe the picture. | a red square | a red\nsquare |")  # as lmms-eval sends it
    assert stub.prompts[0].startswith(mmvet_grader.official_prompt()) and stub.max_tokens == {128}
    assert m["grader"].startswith("lmms-eval ")
    again = mmvet.score(str(tmp_path), answers(tmp_path))
    assert stub.requests == 4 and again["cached_grades"] == 3 and again["total"] == 70.0  # re-run: no requests
    assert "| 70.0 | 70.0 | 70.0 | 70.0 | n/a | 70.0 | 70.0 |" in mmvet.markdown(again)


def test_unparseable_replies_are_counted(tmp_path, monkeypatch):
    make_mmvet(str(tmp_path))
    server = StubJudge(reply="excellent", fail_first=0)
    try:
        judge = Judge(base_url=server.url, api_key="test-key", retries=1)
        m = mmvet.score(str(tmp_path), answers(tmp_path), judge=judge)
    finally:
        server.close()
    assert sorted(m["unparseable_grades"]) == ["v1_0", "v1_1", "v1_2"] and m["total"] == 0.0
    assert server.temperatures == [0.0, 0.5, 1.0, 1.5] * 3  # lmms-eval's warmer retries, then 0.0


def test_clear_error_when_unconfigured(tmp_path, monkeypatch):
    make_mmvet(str(tmp_path))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(JudgeNotConfigured, match="OPENAI_BASE_URL"):
        mmvet.score(str(tmp_path), answers(tmp_path))


def test_persistent_client_errors_are_not_retried_forever(tmp_path):
    server = StubJudge(fail_first=100)
    try:
        judge = Judge(base_url=server.url, api_key="test-key", retries=2)
        with pytest.raises(RuntimeError, match="HTTP 500"):
            judge.grade("prompt", mmvet_grader.parse, mmvet_grader.TEMPERATURES, mmvet_grader.MAX_TOKENS)
        assert server.requests == 3
    finally:
        server.close()


@pytest.fixture(scope="module")
def lmms_eval_mmvet():
    """lmms-eval's own MM-Vet module (it builds an API client at import, so a key must be set; nothing is sent)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENAI_API_KEY", "unused")
        mp.setenv("API_TYPE", "openai")
        import lmms_eval.tasks.mmvet.utils as module
    return module


def lmms_eval_grade(module, monkeypatch, doc, prediction, reply):
    """lmms-eval's mmvet_process_results with its judge call replaced: (score, [(prompt, temperature) asked])."""
    asked = []

    def get_chat_response(prompt, temperature=0.0, **kwargs):
        asked.append((prompt, temperature))
        return reply, "stub"

    monkeypatch.setattr(module, "get_chat_response", get_chat_response)
    monkeypatch.setattr(module.time, "sleep", lambda s: None)
    return module.mmvet_process_results(doc, [prediction])["gpt_eval_score"]["score"], asked


# a number outside [0, 1] is left out: lmms-eval asks again at the same temperature for ever; we ask warmer (below)
@pytest.mark.parametrize("reply", ["0.7", "1.0", "0", "1", "0.4 The prediction names one element", "Score: 0.3",
                                   "great", "0.8.", ""])
def test_query_and_grade_are_lmms_evals(tmp_path, monkeypatch, lmms_eval_mmvet, reply):
    """The text our judge is sent is the text lmms-eval sends, and a reply is graded as lmms-eval grades it (first
    word as a float in [0, 1]; otherwise asked again warmer and finally 0.0)."""
    doc = {"question_id": "v1_1", "question": "What is shown?\nAnswer briefly.", "answer": "square<OR>box",
           "capability": "rec,ocr", "image": None}
    prediction = "A blue\nsquare | maybe a box"
    want, asked = lmms_eval_grade(lmms_eval_mmvet, monkeypatch, doc, prediction, reply)
    server = StubJudge(reply=reply, fail_first=0)
    try:
        judge = Judge(base_url=server.url, api_key="test-key", retries=0)
        got = judge.grade(mmvet_grader.query(doc["question"], doc["answer"], prediction), mmvet_grader.parse,
                          mmvet_grader.TEMPERATURES, mmvet_grader.MAX_TOKENS)
    finally:
        server.close()
    assert {p for p, _ in asked} == set(server.prompts)  # one text, the same
    assert (got["score"] or 0.0) == want
    # lmms-eval also re-asks at a temperature whose reply it then drops; we ask only where a reply is read
    assert server.temperatures == sorted({t for _, t in asked if t < 2})


@pytest.mark.parametrize("reply", ["7", "-0.5", "nan"])
def test_a_grade_outside_0_to_1_is_asked_again_warmer(reply):
    assert mmvet_grader.parse(reply) is None


def test_the_prompt_is_read_from_the_installed_file_without_importing_it(monkeypatch):
    import sys

    before = set(sys.modules)
    mmvet_grader.official_prompt.cache_clear()
    prompt = mmvet_grader.official_prompt()
    assert "lmms_eval.tasks.mmvet.utils" not in set(sys.modules) - before
    assert prompt.startswith("Compare the ground truth and prediction") and "<AND>" in prompt and "<OR>" in prompt
    monkeypatch.setattr(mmvet_grader.importlib.util, "find_spec", lambda name: None)
    mmvet_grader.official_prompt.cache_clear()
    with pytest.raises(mmvet_grader.GraderUnavailable, match="pip install --no-deps lmms-eval"):
        mmvet_grader.official_prompt()
    mmvet_grader.official_prompt.cache_clear()
