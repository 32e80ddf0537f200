"""Conversation -> (input_ids, labels): LLaVA's supervision, computed from character spans.

The template renders the prompt and reports which characters are assistant replies (+ their end token). A token is
supervised when its character span overlaps a reply, or when it is the separator space alone, split off in front of
a reply (LLaVA supervises that token too). Every way this can go wrong silently in LLaVA's round-length
arithmetic is an explicit check here: a reply that got no token, a reply end that is not the tokenizer's eos, an
<image> that did not become exactly one image token.

Input ids are built as LLaVA's `tokenizer_image_token` builds them: the text is split at <image> and each chunk is
encoded on its own (the tokenizer's BOS kept on the first chunk only). On a SentencePiece tokenizer with
`legacy=False` that is not the same as encoding the whole string: the chunk after the image starts with the
tokenizer's dummy-prefix "▁", which a one-pass encoding (no prefix after a special token) does not have.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llava.constants import DEFAULT_IMAGE_TOKEN, IGNORE_INDEX
from llava.conversation import ChatTemplate, Template
from llava.data.sources import DataError


@dataclass
class Tokenized:
    input_ids: torch.Tensor
    labels: torch.Tensor
    truncated: bool


def ensure_image_token(tokenizer) -> int:
    """<image> as one special token (LLaVA's tokenizers do not have it) and a pad token (LLaVA pads Vicuna with
    <unk>); returns the image token's id."""
    if DEFAULT_IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [DEFAULT_IMAGE_TOKEN]})
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token if tokenizer.unk_token is not None else tokenizer.eos_token
    return tokenizer.convert_tokens_to_ids(DEFAULT_IMAGE_TOKEN)


def load_tokenizer(path: str):
    """A Vicuna / LLaVA directory's tokenizer with the <image> token, for checks made without loading a model."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True)
    ensure_image_token(tokenizer)
    return tokenizer


def move_image_to_front(turns: list[tuple[int, str]], has_image: bool) -> list[tuple[int, str]]:
    """As LLaVA's `preprocess_multimodal`: the turn holding <image> becomes '<image>\\n' + its text, stripped; no
    other turn is touched. An image sample with no <image> tag gets it in front of the first turn."""
    if not has_image:
        return turns
    if not any(DEFAULT_IMAGE_TOKEN in value for _, value in turns):
        turns = [(turns[0][0], DEFAULT_IMAGE_TOKEN + turns[0][1]), *turns[1:]]
    out = []
    for role, value in turns:
        if DEFAULT_IMAGE_TOKEN in value:
            value = (DEFAULT_IMAGE_TOKEN + "\n" + value.replace(DEFAULT_IMAGE_TOKEN, "").strip()).strip()
        out.append((role, value))
    return out


def place_images(turns: list[tuple[int, str]], images: int) -> list[tuple[int, str]]:
    """For another family's chat template: the <image> tags stay where the record put them; an image sample without
    one gets it in front of the first turn (LLaVA's convention)."""
    if images and not any(DEFAULT_IMAGE_TOKEN in value for _, value in turns):
        return [(turns[0][0], f"{DEFAULT_IMAGE_TOKEN}\n{turns[0][1]}"), *turns[1:]]
    return turns


def tokenize_conversation(turns, template: Template | ChatTemplate, tokenizer, image_seq_length: int, max_length: int,
                          where: str) -> Tokenized:
    """Tokenize one conversation with labels; `where` (file + sample id) goes into every error message."""
    try:
        text, spans = template.render(turns)
    except ValueError as e:  # a chat_template that cannot be split into turns
        raise DataError(where, f"template/tokenizer mismatch: {e}") from e
    ids, offsets = encode_chunks(text, tokenizer, template.add_special_tokens)
    labels = [IGNORE_INDEX] * len(ids)
    image_id = tokenizer.convert_tokens_to_ids(DEFAULT_IMAGE_TOKEN)
    for span_start, span_end in spans:
        hit = [i for i, (s, e) in enumerate(offsets) if e > s and e > span_start and s < span_end]
        if not hit:
            raise DataError(where, f"template/tokenizer mismatch: reply at characters {span_start}-{span_end} "
                            f"got no tokens (template {template.name!r})")
        before = hit[0] - 1  # a lone "▁" split off in front of the reply (replies starting with a digit, a newline,
        # a byte-fallback character): LLaVA's preprocess_v1 supervises it (its `instruction_len - 2`), and so do we
        if template.style == "two" and before >= 0 and offsets[before] == (span_start - 1, span_start) \
                and text[span_start - 1] == " ":
            hit.insert(0, before)
        for i in hit:
            labels[i] = ids[i]
        if template.style == "two" and ids[hit[-1]] != tokenizer.eos_token_id:
            raise DataError(
                where,
                f"template/tokenizer mismatch: template {template.name!r} ends replies with "
                f"{template.sep2!r} but the tokenizer encodes it as {tokenizer.convert_ids_to_tokens(ids[hit[-1]])!r}, "
                f"not its eos token {tokenizer.eos_token!r}; check --version against the model's tokenizer"
            )
        if any(ids[i] == image_id for i in hit):
            raise DataError(where, f"a reply contains {DEFAULT_IMAGE_TOKEN}; images go in the human turn")

    if DEFAULT_IMAGE_TOKEN in text and (image_id is None or image_id == tokenizer.unk_token_id):
        raise DataError(where, f"template/tokenizer mismatch: the tokenizer has no {DEFAULT_IMAGE_TOKEN} token "
                        f"(is {DEFAULT_IMAGE_TOKEN} a special token?)")

    input_ids, out_labels = expand_image_tokens(ids, labels, image_id, image_seq_length)

    truncated = len(input_ids) > max_length
    if truncated:
        cut = max_length
        if image_id in input_ids[cut:] and image_id in input_ids[:cut]:
            raise DataError(where, f"model_max_length={max_length} cuts through the image tokens "
                            f"({image_seq_length} per image); raise --model_max_length")
        input_ids, out_labels = input_ids[:cut], out_labels[:cut]
    if all(lab == IGNORE_INDEX for lab in out_labels):
        raise DataError(where, f"no supervised token left after truncation to model_max_length={max_length}")
    return Tokenized(torch.tensor(input_ids), torch.tensor(out_labels), truncated)


def expand_image_tokens(ids: list[int], labels: list[int] | None, image_id: int, image_seq_length: int):
    """One placeholder -> image_seq_length tokens, which LlavaForConditionalGeneration fills with projected patches."""
    labels = labels if labels is not None else [IGNORE_INDEX] * len(ids)
    out_ids, out_labels = [], []
    for t, lab in zip(ids, labels):
        if t == image_id:
            out_ids.extend([image_id] * image_seq_length)
            out_labels.extend([IGNORE_INDEX] * image_seq_length)
        else:
            out_ids.append(t)
            out_labels.append(lab)
    return out_ids, out_labels


def encode_chunks(text: str, tokenizer, add_special_tokens: bool = True):
    """(ids, character offsets) of `text` as LLaVA's `tokenizer_image_token` encodes it: every chunk between <image>
    placeholders on its own, one image token between chunks, and the BOS that the tokenizer puts in front of each
    chunk kept only in front of the first (LLaVA drops the first id of every later chunk when the first begins with
    BOS). Only a BOS the tokenizer added is dropped: a chat template's text can itself begin with the token that
    the tokenizer calls BOS (SmolLM2's <|im_start|>), and the chunk after the image then starts with real text.
    Offsets are shifted into `text`, so reply spans can be placed on them."""
    image_id = tokenizer.convert_tokens_to_ids(DEFAULT_IMAGE_TOKEN)
    ids: list[int] = []
    offsets: list[tuple[int, int]] = []
    start = 0
    drop_first = False
    for k, piece in enumerate(text.split(DEFAULT_IMAGE_TOKEN)):
        enc = tokenizer(piece, return_offsets_mapping=True, add_special_tokens=add_special_tokens)
        chunk_ids, chunk_offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
        added_bos = add_special_tokens and bool(chunk_ids) and chunk_ids[0] == tokenizer.bos_token_id
        if k == 0:
            drop_first = added_bos
        else:
            ids.append(image_id)
            offsets.append((start - len(DEFAULT_IMAGE_TOKEN), start))
            if drop_first and added_bos:
                chunk_ids, chunk_offsets = chunk_ids[1:], chunk_offsets[1:]
        ids += chunk_ids
        offsets += [(s + start, e + start) for s, e in chunk_offsets]
        start += len(piece) + len(DEFAULT_IMAGE_TOKEN)
    return ids, offsets


def encode_prompt(prompt: str, tokenizer, image_seq_length: int, add_special_tokens: bool = True) -> list[int]:
    """Token ids of a generation prompt (chunked at <image> as LLaVA encodes it), image placeholders expanded."""
    ids, _ = encode_chunks(prompt, tokenizer, add_special_tokens)
    image_id = tokenizer.convert_tokens_to_ids(DEFAULT_IMAGE_TOKEN)
    return expand_image_tokens(ids, None, image_id, image_seq_length)[0]
