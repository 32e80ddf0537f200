"""Labels on a Llama SentencePiece tokenizer (trained here offline with Llama's settings: BPE, byte fallback, split
digits, dummy prefix), loaded as the project loads a Vicuna folder, in both `legacy` modes.

The rule checked on every conversation: the supervised tokens of each reply are exactly the tokens after the colon
of its "ASSISTANT:" up to and including its </s> - so a "▁" the tokenizer splits off in front of a reply that starts
with a digit, a newline or a byte-fallback character is supervised - and no other token is. For text-only
conversations the labels also equal those of LLaVA's `preprocess_v1` round arithmetic, re-implemented below.
"""

import json
import random

import pytest

from llava.constants import IGNORE_INDEX
from llava.conversation import get_template
from llava.data.preprocess import move_image_to_front, tokenize_conversation

spm = pytest.importorskip("sentencepiece", reason="sentencepiece is in the dev extra")

STARTS = ["2 apples", "42", "\nA list", "é is a letter", "日本", "yes", "a red circle", "Blue.", " 7 cats", "ü"]
QUESTIONS = ["What is it?", "How many?", "Which color is the shape?", "Describe it.", "Is it red?"]


@pytest.fixture(scope="module", params=[True, False], ids=["legacy", "non-legacy"])
def tokenizer(request, tmp_path_factory):
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp(f"spm{request.param}")
    corpus = [get_template("v1").system] + QUESTIONS + STARTS + ["USER: ASSISTANT: the a of shape color"] * 3
    (root / "corpus.txt").write_text("\n".join(corpus * 20))
    spm.SentencePieceTrainer.train(input=str(root / "corpus.txt"), model_prefix=str(root / "m"), vocab_size=320,
                                   model_type="bpe", byte_fallback=True, split_digits=True, add_dummy_prefix=True,
                                   unk_id=0, bos_id=1, eos_id=2, pad_id=-1, character_coverage=1.0,
                                   normalization_rule_name="identity", remove_extra_whitespaces=False, minloglevel=2)
    folder = root / "vicuna"
    folder.mkdir()
    (folder / "tokenizer.model").write_bytes((root / "m.model").read_bytes())
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "legacy": request.param, "add_bos_token": True, "add_eos_token": False,
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}))
    tok = AutoTokenizer.from_pretrained(str(folder), use_fast=True)
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    assert tok.tokenize("a 2")[-2:] == ["▁", "2"]  # split digits: the case LLaVA's arithmetic covers
    return tok, request.param


def conversations(n=240, seed=0):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        rounds = rng.randint(1, 4)
        turns = []
        for _ in range(rounds):
            turns += [(0, rng.choice(QUESTIONS)), (1, rng.choice(STARTS) + rng.choice(["", " more", ".\nEnd"]))]
        out.append((turns, i % 2 == 0))
    return out


def llava_preprocess_v1_labels(text, tokenizer, legacy):
    """LLaVA's preprocess_v1 for a text-only conversation: rounds split at </s>, instruction length from
    tokenizing the round's head up to 'ASSISTANT: ' minus 2, one token less per later round when not legacy."""
    ids = tokenizer(text).input_ids
    labels = list(ids)
    sep = " ASSISTANT: "
    cur = 1
    labels[:cur] = [IGNORE_INDEX] * cur
    for i, rou in enumerate(text.split("</s>")):
        if rou == "":
            break
        parts = rou.split(sep)
        assert len(parts) == 2
        round_len = len(tokenizer(rou).input_ids)
        instruction_len = len(tokenizer(parts[0] + sep).input_ids) - 2
        if i != 0 and not legacy:
            round_len -= 1
            instruction_len -= 1
        labels[cur:cur + instruction_len] = [IGNORE_INDEX] * instruction_len
        cur += round_len
    labels[cur:] = [IGNORE_INDEX] * (len(labels) - cur)
    return labels


def test_reply_tokens_and_only_they_are_supervised(tokenizer):
    tok, legacy = tokenizer
    template = get_template("v1")
    colon = tok.convert_tokens_to_ids(":")
    compared = 0
    for k, (turns, with_image) in enumerate(conversations()):
        if with_image:
            turns = move_image_to_front([(0, "<image>\n" + turns[0][1]), *turns[1:]], True)
        out = tokenize_conversation(turns, template, tok, 4, 4096, f"gen.json: sample {k}")
        ids, labels = out.input_ids.tolist(), out.labels.tolist()
        runs, start = [], None
        for i, lab in enumerate(labels + [IGNORE_INDEX]):
            if lab != IGNORE_INDEX and start is None:
                start = i
            elif lab == IGNORE_INDEX and start is not None:
                runs.append((start, i))
                start = None
        replies = [msg for role, msg in turns if role == 1]
        assert len(runs) == len(replies), (k, turns)
        for (s, e), reply in zip(runs, replies):
            assert ids[s - 1] == colon and tok.convert_ids_to_tokens(ids[s - 2]) == "T"  # right after "ASSISTANT:"
            assert ids[e - 1] == tok.eos_token_id
            assert tok.decode(ids[s:e - 1]).strip() == reply.strip()
        assert all(lab in (IGNORE_INDEX, i) for lab, i in zip(labels, ids))
        if not with_image:
            text, _ = template.render(turns)
            assert labels == llava_preprocess_v1_labels(text, tok, legacy), (k, turns)
            compared += 1
    assert compared == 120
