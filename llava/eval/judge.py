"""An LLM judge behind an OpenAI-compatible chat endpoint, for MM-Vet's open-ended answers (the grading protocol
itself is the benchmark's: llava/eval/benchmarks/mmvet_grader.py).

Configured from the environment: OPENAI_BASE_URL (e.g. https://host/v1), OPENAI_API_KEY, MMVET_JUDGE_MODEL
(default gpt-4-0613, the model MM-Vet's leaderboard used). Transient failures (HTTP 429/5xx, network errors) are
retried with exponential backoff; every grade is cached on disk keyed by (model, prompt), so a re-run costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

DEFAULT_MODEL = "gpt-4-0613"


class JudgeNotConfigured(RuntimeError):
    pass


class Judge:
    def __init__(self, base_url: str | None = None, api_key: str | None = None, model: str | None = None,
                 cache_path: str | None = None, retries: int = 5, backoff: float | None = None, timeout: float = 60):
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "").rstrip("/")
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY")
        if not self.base_url or not self.api_key:
            raise JudgeNotConfigured(
                "MM-Vet is graded by an LLM judge and none is configured: set OPENAI_BASE_URL (an OpenAI-compatible "
                "endpoint, e.g. https://api.openai.com/v1) and OPENAI_API_KEY, optionally MMVET_JUDGE_MODEL")
        self.model = model or os.environ.get("MMVET_JUDGE_MODEL", DEFAULT_MODEL)
        self.retries = retries
        self.backoff = float(os.environ.get("MMVET_JUDGE_BACKOFF", "2.0")) if backoff is None else backoff
        self.timeout = timeout
        self.cache_path = cache_path
        self.cache: dict[str, dict] = {}
        self.requests = 0
        if cache_path and os.path.exists(cache_path):
            with open(cache_path, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        row = json.loads(line)
                        self.cache[row["key"]] = row

    def _post(self, prompt: str, temperature: float, max_tokens: int) -> str:
        body = json.dumps({"model": self.model, "temperature": temperature, "max_tokens": max_tokens,
                           "messages": [{"role": "user", "content": prompt}]}).encode()
        request = urllib.request.Request(f"{self.base_url}/chat/completions", data=body, method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {self.api_key}"})
        self.requests += 1
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            payload = json.loads(response.read().decode())
        return payload["choices"][0]["message"]["content"]

    def _ask(self, prompt: str, temperature: float, max_tokens: int) -> str:
        for attempt in range(self.retries + 1):
            try:
                return self._post(prompt, temperature, max_tokens)
            except urllib.error.HTTPError as e:
                if e.code not in (408, 429) and e.code < 500 or attempt == self.retries:
                    raise RuntimeError(f"judge endpoint {self.base_url} answered HTTP {e.code}: {e.reason}") from e
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                if attempt == self.retries:
                    raise RuntimeError(f"judge endpoint {self.base_url} unreachable: {e}") from e
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

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
