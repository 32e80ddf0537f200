"""Streaming decode: each token costs the same however long the reply, and the pieces sent add up to the answer."""

import random
import time

import pytest

from llava.model.builder import load_model
from llava.serve.decoding import RowText


@pytest.fixture(scope="module")
def tokenizer():
    return load_model("tiny")[1]


class WithoutBackend:
    """A tokenizer offering only decode(): the sliding-window path."""

    def __init__(self, tokenizer):
        self.decode = tokenizer.decode


def reply_ids(tokenizer, n: int, seed: int) -> list[int]:
    """n ids of ordinary tokens (byte pieces included: half characters must wait for the rest)."""
    special = set(tokenizer.all_special_ids)
    rng = random.Random(seed)
    vocab = [i for i in range(len(tokenizer)) if i not in special]
    return [rng.choice(vocab) for _ in range(n)]


@pytest.mark.parametrize("backend", [True, False])
@pytest.mark.parametrize("stop", [(), ("ab", "\n\n", "the")])
def test_the_pieces_add_up_to_the_whole_decode(tokenizer, backend, stop):
    tok = tokenizer if backend else WithoutBackend(tokenizer)
    for seed in range(20):
        ids = reply_ids(tokenizer, 200, seed)
        row, pieces = RowText(tok, stop), []
        for token in ids:
            pieces.append(row.push(token))
            if row.hit_stop:
                break
        pieces.append(row.finish())
        whole = tokenizer.decode(row.ids, skip_special_tokens=True).lstrip()
        cut = [whole.index(s) for s in stop if s in whole]
        expected = (whole[:min(cut)] if cut else whole).strip()
        assert "".join(pieces) == expected == row.text, seed
        assert row.hit_stop == bool(cut), seed


def test_time_per_token_is_flat_over_a_512_token_reply(tokenizer):
    """The first 64 and the last 64 pushes of a 512-token reply cost the same within 20% (the best of 15 rounds
    per position, against the machine's noise); decoding the whole reply at every token made the last ones ~8x
    slower. bench/stream_decode.py prints both side by side."""
    ids = reply_ids(tokenizer, 512, 0)
    best = [float("inf")] * len(ids)
    for _ in range(15):
        row = RowText(tokenizer, ("</s>",))
        for i, token in enumerate(ids):
            start = time.perf_counter()
            row.push(token)
            best[i] = min(best[i], time.perf_counter() - start)
        assert not row.hit_stop
    first, last = sum(best[:64]), sum(best[-64:])
    assert last <= 1.2 * first, (first, last)
