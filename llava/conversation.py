"""Conversation templates with LLaVA's exact strings.

A template turns a list of (role, message) turns into one prompt string. Data preparation needs to know which
characters of that string belong to assistant replies, so `render` also returns those character spans: labels are
then assigned from the tokenizer's offset mapping instead of LLaVA's per-round token arithmetic, which silently
masks whole samples when the tokenizer does not match the template (LLaVA issue #661).
"""

from __future__ import annotations

from dataclasses import dataclass

from llava.constants import DEFAULT_IMAGE_TOKEN

# LLaVA's conversation.py: `conv_vicuna_v1` (`--version v1`, LLaVA-1.5's training and eval template) says "user",
# `conv_llava_v1` says "human"; the rest of the two templates is the same.
VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
LLAVA_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)


@dataclass(frozen=True)
class Template:
    """A LLaVA conversation template.

    style "two": ``system + sep + ROLE: msg + sep | sep2`` alternating (vicuna_v1, llava_v1).
    style "plain": stage-1 pre-training, LLaVA's `preprocess_plain`: per exchange the image placeholder (the question
    text is dropped) + reply + sep; only reply + sep are supervised.
    """

    name: str
    system: str
    roles: tuple[str, str]
    style: str
    sep: str
    sep2: str | None = None
    add_special_tokens: bool = True  # the tokenizer adds <s>; the template text does not hold it

    def render(self, turns: list[tuple[str, str]], add_generation_prompt: bool = False):
        """Return (prompt, reply_spans): reply_spans are [start, end) character ranges to supervise.

        `turns` alternates human/assistant messages; roles are indices 0 (human) and 1 (assistant).
        The span of each reply includes its end separator (sep2 for "two"), so the model learns to stop.
        """
        spans: list[tuple[int, int]] = []
        if self.style == "two":
            text = self.system + self.sep
            seps = (self.sep, self.sep2)
            for i, (role, msg) in enumerate(turns):
                head = self.roles[role] + ": "
                if role == 1:
                    start = len(text) + len(head)
                    text += head + msg + seps[i % 2]
                    spans.append((start, len(text)))
                else:
                    text += head + msg + seps[i % 2]
            if add_generation_prompt:
                text += self.roles[1] + ":"
            return text, spans
        if self.style == "plain":
            text = ""
            for role, msg in turns:
                if role == 1:
                    start = len(text)
                    text += msg + self.sep
                    spans.append((start, len(text)))
                elif DEFAULT_IMAGE_TOKEN in msg:
                    text += DEFAULT_IMAGE_TOKEN
            return text, spans
        raise ValueError(f"unknown template style {self.style!r}")

    def prompt(self, question: str) -> str:
        """The generation prompt for one user question (evaluation)."""
        if self.style == "plain":
            return DEFAULT_IMAGE_TOKEN if DEFAULT_IMAGE_TOKEN in question else ""
        text, _ = self.render([(0, question)], add_generation_prompt=True)
        return text


TEMPLATES: dict[str, Template] = {
    "vicuna_v1": Template("vicuna_v1", VICUNA_SYSTEM, ("USER", "ASSISTANT"), "two", " ", "</s>"),
    "llava_v1": Template("llava_v1", LLAVA_SYSTEM, ("USER", "ASSISTANT"), "two", " ", "</s>"),
    "plain": Template("plain", "", ("", ""), "plain", "\n"),
}
# LLaVA's `--version` values and their templates.
ALIASES = {"v1": "vicuna_v1", "vicuna": "vicuna_v1", "llava_v1": "llava_v1", "plain": "plain", "vicuna_v1": "vicuna_v1"}


class ChatTemplate:
    """Fallback for language models that are not Vicuna: the tokenizer's own `chat_template`.

    Reply spans come from rendering growing prefixes of the conversation: the reply to turn i starts where the
    rendering of turns[:i] + generation prompt ends, and runs to the end of the rendering of turns[:i+1] (its
    end-of-turn marker included). A template whose renderings are not prefixes of each other is refused.
    """

    name = "chat_template"
    style = "chat"
    add_special_tokens = False  # the rendered text already holds whatever special tokens the template wants

    def __init__(self, tokenizer):
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError("--version chat_template needs a tokenizer that has a chat_template")
        self.tokenizer = tokenizer

    def _apply(self, turns, add_generation_prompt: bool) -> str:
        messages = [{"role": "assistant" if role == 1 else "user", "content": text} for role, text in turns]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def render(self, turns: list[tuple[str, str]], add_generation_prompt: bool = False):
        text = self._apply(turns, add_generation_prompt)
        spans = []
        for i, (role, _) in enumerate(turns):
            if role != 1:
                continue
            before = self._apply(turns[:i], add_generation_prompt=True)
            through = self._apply(turns[: i + 1], add_generation_prompt=False)
            if not (through.startswith(before) and text.startswith(through)):
                raise ValueError("the tokenizer's chat_template does not render conversations prefix by prefix; "
                                 "labels cannot be placed (use a LLaVA template with --version)")
            spans.append((len(before), len(through)))
        return text, spans

    def prompt(self, question: str) -> str:
        return self._apply([(0, question)], add_generation_prompt=True)


def get_template(name: str, tokenizer=None) -> Template | ChatTemplate:
    """A LLaVA template by `--version` name, or `chat_template` for the tokenizer's own."""
    if name == "chat_template":
        return ChatTemplate(tokenizer)
    key = ALIASES.get(name, name)
    if key not in TEMPLATES:
        raise ValueError(f"unknown conversation template {name!r}; choose one of {sorted(ALIASES)} or chat_template")
    return TEMPLATES[key]
