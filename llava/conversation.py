"""Conversation templates with LLaVA's exact strings.

A template turns a list of (role, message) turns into one prompt string. Data preparation needs to know which
characters of that string belong to assistant replies, so `render` also returns those character spans: labels are
then assigned from the tokenizer's offset mapping instead of LLaVA's per-round token arithmetic, which silently
masks whole samples when the tokenizer does not match the template (LLaVA issue #661).
"""

from __future__ import annotations

from dataclasses import dataclass

VICUNA_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)


@dataclass(frozen=True)
class Template:
    """A LLaVA conversation template.

    style "two": ``system + sep + ROLE: msg + sep | sep2`` alternating (vicuna_v1, llava_v1).
    style "plain": the pre-training format, ``msg0 + sep + msg1 + sep`` with no roles and no system prompt.
    """

    name: str
    system: str
    roles: tuple[str, str]
    style: str
    sep: str
    sep2: str | None = None

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
                else:
                    text += msg + self.sep
            return text, spans
        raise ValueError(f"unknown template style {self.style!r}")

    def prompt(self, question: str) -> str:
        """The generation prompt for one user question (evaluation)."""
        if self.style == "plain":
            return question + self.sep
        text, _ = self.render([(0, question)], add_generation_prompt=True)
        return text

    @property
    def stop_string(self) -> str:
        return self.sep2 if self.style == "two" else self.sep


TEMPLATES: dict[str, Template] = {
    "vicuna_v1": Template("vicuna_v1", VICUNA_SYSTEM, ("USER", "ASSISTANT"), "two", " ", "</s>"),
    "llava_v1": Template("llava_v1", VICUNA_SYSTEM, ("USER", "ASSISTANT"), "two", " ", "</s>"),
    "plain": Template("plain", "", ("", ""), "plain", "\n"),
}
# LLaVA's `--version` values and their templates.
ALIASES = {"v1": "vicuna_v1", "vicuna": "vicuna_v1", "llava_v1": "llava_v1", "plain": "plain", "vicuna_v1": "vicuna_v1"}


def get_template(name: str) -> Template:
    key = ALIASES.get(name, name)
    if key not in TEMPLATES:
        raise ValueError(f"unknown conversation template {name!r}; choose one of {sorted(ALIASES)}")
    return TEMPLATES[key]
