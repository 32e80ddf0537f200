"""An LLM judge behind an OpenAI-compatible chat endpoint, for MM-Vet's open-ended answers (the grading protocol
itself is the benchmark's: llava/eval/benchmarks/mmvet_grader.py).

Configured from the environment: OPENAI_BASE_URL (e.g. https://host/v1), OPENAI_API_KEY, MMVET_JUDGE_MODEL
(default gpt-4-0613, the model MM-Vet's leaderboard used). Requests go through the `openai` client (the `judge`
extra), which retries transient failures (HTTP 408/409/429/5xx, network errors) with backoff and honours
Retry-After; every grade is cached on disk keyed by (model, prompt), so a re-run costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence

DEFAULT_MODEL = "gpt-4-0613"


class JudgeNotConfigured(RuntimeError):
    pass


class Judge:
    def __init__(self, base_url: str | None = None, api_key: str | None = None, model: str | None = None,
                 cache_path: str | None = None, retries: int = 5, timeout: float = 60):
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "").rstrip("/")
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY")
        if not self.base_url or not self.api_key:
            raise JudgeNotConfigured(
                "MM-Vet is graded by an LLM judge and none is configured: set OPENAI_BASE_URL (an OpenAI-compatible "
                "endpoint, e.g. https://api.openai.com/v1) and OPENAI_API_KEY, optionally MMVET_JUDGE_MODEL")
        try:
            from openai import OpenAI
        except ImportError as e:
            raise JudgeNotConfigured("the MM-Vet judge talks to its endpoint through the openai client: "
                                     "pip install 'llava-asymlora[judge]'") from e
        self.model = model or os.environ.get("MMVET_JUDGE_MODEL", DEFAULT_MODEL)
        self.client = OpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=retries, timeout=timeout)
        self.cache_path = cache_path
        self.cache: dict[str, dict] = {}
        self.requests = 0
        if cache_path and os.path.exists(cache_path):
            with open(cache_path, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        row = json.loads(line)
                        self.cache[row["key"]] = row

    def _ask(self, prompt: str, temperature: float, max_tokens: int) -> str:
        """One reply; the openai client retries 408/409/429/5xx and connection errors with backoff (Retry-After
        honoured), up to `retries` times."""
        import openai

        self.requests += 1
        try:
            response = self.client.chat.completions.create(
                model=self.model, temperature=temperature, max_tokens=max_tokens,
                messages=[{"role": "user", "content": prompt}])
        except openai.APIStatusError as e:
            raise RuntimeError(f"judge endpoint {self.base_url} answered HTTP {e.status_code}: {e.message}") from e
        except openai.APIConnectionError as e:  # timeouts included
            raise RuntimeError(f"judge endpoint {self.base_url} unreachable: {e}") from e
        return response.choices[0].message.content or ""

    def grade(self, prompt: str, parse: Callable[[str], float | None], temperatures: Sequence[float],
              max_tokens: int) -> dict:
        """{"score": what `parse` read, or None if no reply parsed, "raw": the last reply, "cached": bool}. An
        unparseable reply is asked again at the next of `temperatures`; an empty one ends the grading (no grade)."""
        key = hashlib.sha256(f"{self.model}\n{prompt}".encode()).hexdigest()
        if key in self.cache:
            return {**self.cache[key], "cached": True}
        raw, value = "", None
        for temperature in temperatures:
            raw = self._ask(prompt, temperature, max_tokens) or ""
            value = parse(raw) if raw.strip() else None
            if value is not None or not raw.strip():
                break
        row = {"key": key, "score": value, "raw": raw}
        self.cache[key] = row
        if self.cache_path:
            os.makedirs(os.path.dirname(os.path.abspath(self.cache_path)), exist_ok=True)
            with open(self.cache_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        return {**row, "cached": False}
