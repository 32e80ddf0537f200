"""Streaming decode cost per token, early vs late in a long reply: the serving engine's incremental decode
(llava.serve.decoding.RowText) beside decoding the whole reply at every token (what it did before).

    python bench/stream_decode.py [--tokens 512] [--rounds 15]

Prints, for each, the time of the first and the last 64 pushes (best of the rounds per position) and their ratio.
"""

import argparse
import random
import time

from llava.model.builder import load_model
from llava.serve.decoding import RowText


class WholeDecode:
    """The reference: the whole reply decoded again at every token."""

    def __init__(self, tokenizer, stop=()):
        self.tokenizer, self.ids = tokenizer, []

    def push(self, token):
        self.ids.append(token)
        return self.tokenizer.decode(self.ids, skip_special_tokens=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--model", default="tiny", help="tiny | small (whose tokenizer decodes)")
    args = ap.parse_args()
    tokenizer = load_model(args.model)[1]
    special = set(tokenizer.all_special_ids)
    vocab = [i for i in range(len(tokenizer)) if i not in special]
    rng = random.Random(0)
    ids = [rng.choice(vocab) for _ in range(args.tokens)]
    for name, cls in [("whole decode per token", WholeDecode), ("incremental (RowText)", RowText)]:
        best = [float("inf")] * len(ids)
        for _ in range(args.rounds):
            row = cls(tokenizer, ("</s>",))
            for i, token in enumerate(ids):
                start = time.perf_counter()
                row.push(token)
                best[i] = min(best[i], time.perf_counter() - start)
        first, last = sum(best[:64]), sum(best[-64:])
        print(f"{name:24s} first 64: {first * 1e3:7.3f} ms  last 64: {last * 1e3:7.3f} ms  last/first {last / first:5.2f}")


if __name__ == "__main__":
    main()
