"""LLaVA-format conversations -> a batch for any image-text-to-text model, through the model's own processor and
chat template.

How images become tokens (tiles, dynamic resolution, grids, soft tokens) and what a conversation looks like belong to
the model's processor and chat template (LLaVA-NeXT, Qwen2.5-VL, Idefics3, Gemma 3, ...); what LLaVA's data adds is
which tokens are the assistant's replies. Where the template marks them (`{% generation %}`), they are transformers'
own assistant mask. Elsewhere a reply's characters are what rendering the conversation up to the reply's end adds to
rendering it up to the reply with the generation prompt (every chat template renders a conversation's beginning as
the beginning of its text; checked), and its tokens are those whose characters overlap it, found through the
tokenizer's offsets shifted past the image placeholders the processor expanded before them.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass

import torch
from transformers import BatchFeature

from llava.constants import DEFAULT_IMAGE_TOKEN, IGNORE_INDEX
from llava.data.sources import DataError

HUMAN, ASSISTANT = 0, 1
logger = logging.getLogger(__name__)


@dataclass
class Conversation:
    """One sample: its turns as (role, text) with <image> where each image goes, its images, and where it came from."""

    turns: list[tuple[int, str]]
    images: list  # PIL images, in the order of the <image> tags
    where: str


def to_messages(conversation: Conversation) -> list[dict]:
    """transformers' chat messages: each <image> of a human turn an image item at its place (the text around it
    stripped: the template puts its own separators), replies as text."""
    tags = sum(text.count(DEFAULT_IMAGE_TOKEN) for _, text in conversation.turns)
    if tags != len(conversation.images):
        raise DataError(conversation.where, f"{tags} {DEFAULT_IMAGE_TOKEN} tags for {len(conversation.images)} images")
    messages, images = [], iter(conversation.images)
    for role, text in conversation.turns:
        if role == ASSISTANT:
            if DEFAULT_IMAGE_TOKEN in text:
                raise DataError(conversation.where, f"a reply contains {DEFAULT_IMAGE_TOKEN}; images go in the human turn")
            messages.append({"role": "assistant", "content": [{"type": "text", "text": text}]})
            continue
        content = []
        for k, piece in enumerate(text.split(DEFAULT_IMAGE_TOKEN)):
            if k:
                content.append({"type": "image", "image": next(images)})
            if piece.strip():
                content.append({"type": "text", "text": piece.strip()})
        messages.append({"role": "user", "content": content})
    return messages


def marks_replies(processor) -> bool:
    """Whether the processor's chat template marks the assistant's tokens (`{% generation %}`)."""
    template = processor.chat_template
    return isinstance(template, str) and "{% generation %}" in template.replace("{%-", "{%").replace("-%}", "%}")


def reply_spans(processor, messages: list[dict], where: str) -> tuple[str, list[tuple[int, int]]]:
    """(the conversation's text, [start, end) of each reply in it) by rendering its prefixes."""
    def render(upto: int, prompt: bool) -> str:
        return processor.apply_chat_template(messages[:upto], tokenize=False, add_generation_prompt=prompt)

    text = render(len(messages), False)
    spans = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before, through = render(k, True), render(k + 1, False)
        if not (through.startswith(before) and text.startswith(through)):
            raise DataError(where, "template/processor mismatch: the chat template does not render the conversation up to "
                                   f"reply {len(spans) + 1} as the beginning of the whole (cannot place its labels)")
        spans.append((len(before), len(through)))
    return text, spans


def _token_mask(offsets, spans, replacements) -> list[int]:
    """1 for each token whose characters overlap a span; spans are shifted past the placeholders the processor
    expanded before them (`replacements`: its text_replacement_offsets for this row)."""
    ends = [r["span"][1] for r in replacements]
    gained = [0]
    for r in replacements:
        gained.append(gained[-1] + (r["new_span"][1] - r["new_span"][0]) - (r["span"][1] - r["span"][0]))
    shifted = [tuple(c + gained[bisect.bisect_right(ends, c)] for c in span) for span in spans]
    return [int(any(s < end and start < e for start, end in shifted)) if e > s else 0 for s, e in offsets]


def collate(processor, conversations: list[Conversation], max_length: int | None = None) -> dict:
    """The batch the model takes (right-padded input ids, attention mask, labels on the replies, and whatever image
    inputs its processor makes: pixel_values, image_sizes, image_grid_thw, ...)."""
    batch_messages = [to_messages(c) for c in conversations]
    images = [c.images for c in conversations]
    kwargs = dict(padding=True, return_tensors="pt")
    if marks_replies(processor):
        out = processor.apply_chat_template(batch_messages, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True, processor_kwargs=kwargs)
        masks = torch.as_tensor(out.pop("assistant_masks"))
    else:
        rendered = [reply_spans(processor, m, c.where) for m, c in zip(batch_messages, conversations)]
        # the template writes the special tokens (BOS included), as apply_chat_template has the tokenizer assume; the
        # offsets come back as Python lists (some processors cannot make tensors of them) and the rest becomes tensors
        out = processor(text=[text for text, _ in rendered], images=images if any(images) else None, padding=True,
                        add_special_tokens=False, return_offsets_mapping=True, return_text_replacement_offsets=True)
        offsets = out.pop("offset_mapping")
        replacements = out.pop("text_replacement_offsets", None) or [[] for _ in conversations]
        out = BatchFeature(dict(out), tensor_type="pt")
        masks = torch.tensor([_token_mask(row, spans, repl)
                              for row, (_, spans), repl in zip(offsets, rendered, replacements)])
    batch = dict(out)
    labels = batch["input_ids"].masked_fill((masks == 0) | (batch["attention_mask"] == 0), IGNORE_INDEX)
    batch["labels"] = labels
    if max_length and labels.shape[1] > max_length:
        batch = truncate(batch, max_length, conversations)
    for row, conversation in enumerate(conversations):
        if not (batch["labels"][row] != IGNORE_INDEX).any():
            raise DataError(conversation.where, "no reply token to supervise (an empty reply, a template that drops it, "
                                                f"or model_max_length={max_length} cut it)")
    return batch


def truncate(batch: dict, max_length: int, conversations: list[Conversation]) -> dict:
    """Every row cut to max_length tokens (each cut sample logged, as the LLaVA path does); an image's tokens are never
    cut: its pixels would have nowhere to go."""
    shape = batch["input_ids"].shape
    for row, conversation in enumerate(conversations):
        length = int(batch["attention_mask"][row].sum())
        if length > max_length and conversation.images:
            raise DataError(conversation.where, f"model_max_length={max_length} is shorter than this sample with its "
                                                f"image tokens ({length}); raise --model_max_length")
        if length > max_length:
            logger.warning("%s: truncated to model_max_length=%d", conversation.where, max_length)
    # the per-token tensors (ids, mask, labels, token types) are cut; image inputs are not per token
    return {k: v[:, :max_length] if torch.is_tensor(v) and v.shape == shape else v for k, v in batch.items()}
