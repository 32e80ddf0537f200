"""OpenAI's chat-completions request and response bodies, as far as a LLaVA checkpoint can honour them.

A request is read into a ChatRequest or refused with a message naming the field: options this server cannot
honour (n > 1, tools, logprobs, JSON mode) are refused rather than silently ignored.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

from llava.serve.errors import BadRequest

ROLES = {"user": 0, "assistant": 1}
REFUSED = {  # field -> the values that are fine
    "n": (None, 1), "logprobs": (None, False), "top_logprobs": (None, 0), "tools": (None, []), "tool_choice": (None, "none"),
    "functions": (None, []), "response_format": (None, {"type": "text"}), "best_of": (None, 1), "echo": (None, False),
}


@dataclass
class ChatRequest:
    model: str | None
    turns: list[tuple[int, str]]
    image_url: str | None = None
    image_turn: int | None = None
    system: str | None = None
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    stream: bool = False
    include_usage: bool = False
    stop: tuple[str, ...] = ()


def _number(data: dict, name: str, default, low: float, high: float, integer: bool = False):
    value = data.get(name)
    if value is None:
        return default
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        raise BadRequest(f"{name} must be {'an integer' if integer else 'a number'} in [{low}, {high}], got {value!r}",
                         param=name)
    return value


def _content(message: dict, index: int) -> tuple[str, list[str]]:
    """(text, image urls) of one message's content: a string or a list of text / image_url parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise BadRequest(f"messages[{index}].content must be a string or a list of parts", param="messages")
    texts, images = [], []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            url = part.get("image_url")
            images.append(url.get("url") if isinstance(url, dict) else url)
        else:
            raise BadRequest(f"messages[{index}]: content parts are {{type: text, text}} or "
                             f"{{type: image_url, image_url: {{url}}}}, got {str(part)[:80]}", param="messages")
    return "\n".join(texts), images


def _check_unicode(text: str, where: str) -> None:
    """JSON may escape lone UTF-16 surrogates ("\\udcff"); they are not Unicode text and no tokenizer takes them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise BadRequest(f"{where} holds a lone surrogate ({text[e.start:e.end]!a}): not valid Unicode text",
                         param="messages" if where.startswith("messages") else where) from e


def parse_chat_request(body: bytes) -> ChatRequest:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest(f"request body is not valid JSON: {e}") from e
    except RecursionError as e:
        raise BadRequest("request body is nested too deeply") from e
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    for name, fine in REFUSED.items():
        if data.get(name) not in fine:
            raise BadRequest(f"{name}={data[name]!r} is not supported by this server", param=name)
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list", param="messages")
    turns: list[list] = []
    system, image_url, image_turn = [], None, None
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("system", "developer", "user", "assistant"):
            raise BadRequest(f"messages[{i}].role must be system, user or assistant, got {role!r}", param="messages")
        text, images = _content(m, i)
        if role in ("system", "developer"):
            if images:
                raise BadRequest(f"messages[{i}]: a system message cannot hold an image", param="messages")
            system.append(text)
            continue
        if turns and turns[-1][0] == ROLES[role]:  # consecutive messages of one role are one turn
            turns[-1][1] += "\n" + text
        else:
            turns.append([ROLES[role], text])
        if images:
            if role != "user":
                raise BadRequest(f"messages[{i}]: only user messages may hold an image", param="messages")
            if image_url is not None or len(images) > 1:
                raise BadRequest("this model takes one image per conversation (LLaVA-1.5)", param="messages")
            image_url, image_turn = images[0], len(turns) - 1
    stop = data.get("stop")
    stop = (stop,) if isinstance(stop, str) else stop or ()
    if not isinstance(stop, list | tuple) or not all(isinstance(s, str) for s in stop) or len(stop) > 4:
        raise BadRequest("stop must be a string or a list of at most 4 strings", param="stop")
    stream_options = data.get("stream_options") or {}
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("model must be a string", param="model")
    if not isinstance(data.get("stream", False), bool):
        raise BadRequest("stream must be true or false", param="stream")
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    for where, text in [*((f"messages: turn {i}", t) for i, (_, t) in enumerate(turns)), *(("system", t) for t in system),
                        *(("stop", t) for t in stop), ("model", model or ""), ("image_url", image_url or "")]:
        _check_unicode(text, where)
    return ChatRequest(
        model=model, turns=[(r, t) for r, t in turns], image_url=image_url, image_turn=image_turn,
        system="\n".join(system) if system else None,
        max_tokens=_number({"max_tokens": max_tokens}, "max_tokens", None, 1, 10**9, integer=True),
        temperature=float(_number(data, "temperature", 1.0, 0.0, 2.0)),
        top_p=float(_number(data, "top_p", 1.0, 1e-9, 1.0)), stream=bool(data.get("stream", False)),
        include_usage=bool(isinstance(stream_options, dict) and stream_options.get("include_usage")), stop=tuple(stop))


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def completion(cid: str, model: str, result) -> dict:
    return {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                         "finish_reason": result.finish_reason, "logprobs": None}],
            "usage": usage(result.prompt_tokens, len(result.token_ids))}


def chunk(cid: str, model: str, delta: dict, finish_reason: str | None = None, usage_: dict | None = None) -> dict:
    body = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}
    if usage_ is not None:
        body["choices"], body["usage"] = [], usage_
    return body
