"""How many tokens a training set holds: text tokens of every conversation as training renders it (template, image
tag moved to the front) plus image_seq_length tokens per image, for the planner's time estimate.

With a tokenizer, a seeded sample of records is tokenized and the total scaled up (exact when the sample covers the
file); without one, text tokens are estimated from characters at CHARS_PER_TOKEN, a stated assumption (Llama's
SentencePiece tokenizer averages about 4 characters per token on English text).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.conversation import get_template
from llava.data.preprocess import encode_chunks, move_image_to_front
from llava.data.sources import SkipReport, read_records

CHARS_PER_TOKEN = 4.0


@dataclass
class DataTokens:
    records: int
    image_records: int
    text_tokens: float  # over all records (scaled from the sample)
    sampled: int
    how: str  # the tokenizer's name, or the characters-per-token assumption

    def image_tokens(self, image_seq_length: int = 576) -> int:
        return self.image_records * image_seq_length

    def total(self, image_seq_length: int = 576) -> float:
        return self.text_tokens + self.image_tokens(image_seq_length)

    def mean_length(self, image_seq_length: int = 576) -> float:
        return self.total(image_seq_length) / max(1, self.records)


def count_tokens(data_path: str, tokenizer=None, sample: int = 20_000, seed: int = 0,
                 template: str = "v1") -> DataTokens:
    records, _ = read_records(data_path, skip_bad=True, report=SkipReport(quiet=True))
    chosen = records if len(records) <= sample else random.Random(seed).sample(records, sample)
    tmpl = get_template(template, tokenizer)
    texts = [tmpl.render(move_image_to_front(r.turns, r.image is not None))[0] for r in chosen]
    if tokenizer is not None:  # the ids training builds (chunked at <image>), less the image placeholders
        counted = sum(len(encode_chunks(t, tokenizer, tmpl.add_special_tokens)[0]) - t.count(DEFAULT_IMAGE_TOKEN)
                      for t in texts)
        how = f"counted with {getattr(tokenizer, 'name_or_path', 'the tokenizer')}"
        if len(chosen) < len(records):
            how += f" on a sample of {len(chosen):,}, scaled"
    else:
        counted = sum(len(t.replace(DEFAULT_IMAGE_TOKEN, "")) for t in texts) / CHARS_PER_TOKEN
        how = f"{CHARS_PER_TOKEN:g} characters per token (no tokenizer given)"
    scale = len(records) / max(1, len(chosen))
    return DataTokens(records=len(records), image_records=sum(r.image is not None for r in records),
                      text_tokens=counted * scale, sampled=len(chosen), how=how)
