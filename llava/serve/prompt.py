"""A conversation -> the prompt string, rendered as the checkpoint was trained (its own template).

One question with an image renders exactly as llava.eval.generate's prompt (Generator.prompt_for), so a greedy
answer here is the answer an evaluation run gives. The image placeholder goes at the start of the user turn that
carries the image, as LLaVA does; placeholders typed in any message (user, assistant, system) are removed.
"""

from __future__ import annotations

import dataclasses

from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.serve.errors import BadRequest


def render_conversation(generator, turns: list[tuple[int, str]], image_turn: int | None = None,
                        system: str | None = None) -> str:
    """turns: (0 user | 1 assistant, text), alternating and starting with the user; image_turn: the index of the
    user turn that holds the image."""
    if not turns or turns[0][0] != 0 or turns[-1][0] != 0:
        raise BadRequest("the conversation must start and end with a user message", param="messages")
    if any(a[0] == b[0] for a, b in zip(turns, turns[1:])):
        raise BadRequest("user and assistant messages must alternate", param="messages")
    rendered = []
    for i, (role, text) in enumerate(turns):
        # a typed placeholder in any turn would become an image token with no image behind it
        text = text.replace(DEFAULT_IMAGE_TOKEN, "").strip() if role == 0 else text.replace(DEFAULT_IMAGE_TOKEN, "")
        if i == image_turn:
            text = f"{DEFAULT_IMAGE_TOKEN}\n{text}"
        rendered.append((role, text))
    template = generator.template
    if system is not None:
        system = system.replace(DEFAULT_IMAGE_TOKEN, "")
        if template.style == "two":
            template = dataclasses.replace(template, system=system)
        elif template.style == "processor":  # another family's chat template, through its processor
            return template.render(rendered, add_generation_prompt=True, system=system)[0]
        elif template.style == "chat":
            messages = [{"role": "system", "content": system}] + [
                {"role": "assistant" if r == 1 else "user", "content": t} for r, t in rendered]
            return generator.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if template.style == "plain":  # stage-1 checkpoints: the image alone is the prompt
        return DEFAULT_IMAGE_TOKEN if image_turn is not None else ""
    text, _ = template.render(rendered, add_generation_prompt=True)
    return text
