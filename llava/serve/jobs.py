"""A checked request -> an engine Job: the checks both front ends share (image required, image size, context
length, max-tokens cap), so the API and the web app refuse the same things with the same words."""

from __future__ import annotations

from llava.serve.engine import Job
from llava.serve.errors import BadRequest
from llava.serve.images import ImageLimits, check_side
from llava.serve.models import ServedModel
from llava.serve.prompt import render_conversation


def check_image_size(image, limits: ImageLimits) -> None:
    """For an image that arrives decoded (a browser upload)."""
    if image is not None:
        check_side(image.size, limits)


def build_job(served: ServedModel, task_id: int | None, turns: list[tuple[int, str]], image_turn: int | None, image,
              max_tokens: int | None, cap: int, temperature: float = 0.0, top_p: float = 1.0, stop=(),
              system: str | None = None, trace: bool = False) -> Job:
    if served.requires_image and image is None:
        raise BadRequest(f"model {served.name} answers questions about an image: add an image to a user message",
                         param="messages", code="image_required")
    prompt = render_conversation(served.generator, turns, image_turn if image is not None else None, system)
    prompt_tokens = len(served.generator.encode(prompt, image))
    context = served.context_length
    if max_tokens is not None and max_tokens > cap:
        raise BadRequest(f"max_tokens={max_tokens} is above this server's cap of {cap} (--max-tokens)",
                         param="max_tokens")
    max_tokens = max_tokens or min(cap, context - prompt_tokens)
    if max_tokens < 1 or prompt_tokens + max_tokens > context:
        raise BadRequest(f"this model's maximum context length is {context} tokens; the prompt has {prompt_tokens} "
                         f"(image included) and {max_tokens} more were asked for: shorten the conversation or lower "
                         "max_tokens", param="messages", code="context_length_exceeded")
    return Job(served, prompt, image, max_tokens, task_id, temperature, top_p, tuple(stop), trace=trace,
               prompt_tokens=prompt_tokens)
