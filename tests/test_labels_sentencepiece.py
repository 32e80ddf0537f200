"""Labels on a Llama SentencePiece tokenizer (trained here offline with Llama's settings: BPE, byte fallback, split
digits, dummy prefix), loaded as the project loads a Vicuna folder, in both `legacy` modes.

The rule checked on every conversation: the supervised tokens of each reply are exactly the tokens after the colon
of its "ASSISTANT:" up to and including its </s> - so a "▁" the tokenizer splits off in front of a reply that starts
with a digit, a newline or a byte-fallback character is supervised - and no other token is. Input ids and labels
also equal those of LLaVA's own code, re-implemented below from LLaVA's `mm_utils.tokenizer_image_token` (split at
<image>, each chunk encoded on its own, the first chunk's BOS kept) and `train.py`'s `preprocess_v1` (round
arithmetic, one token less per later round when not legacy) and `preprocess_plain`, image samples included; and
generation prompts equal `tokenizer_image_token` of the prompt.
"""

import json
import random

import pytest

from llava.constants import IGNORE_INDEX
from llava.conversation import get_template
from llava.data.preprocess import encode_prompt, move_image_to_front, tokenize_conversation

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


def llava_tokenizer_image_token(prompt, tokenizer):
    """LLaVA's tokenizer_image_token, with the image placeholder id being the tokenizer's <image> id (LLaVA: -200)."""
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    chunks = [tokenizer(c).input_ids for c in prompt.split("<image>")]
    out, offset = [], 0
    if chunks and chunks[0] and chunks[0][0] == tokenizer.bos_token_id:
        offset = 1
        out.append(chunks[0][0])
    interleaved = [x for chunk in chunks for x in (chunk, [image_id] * (offset + 1))][:-1]
    for x in interleaved:
        out.extend(x[offset:])
    return out


def llava_preprocess_v1(text, tokenizer, legacy, has_image):
    """LLaVA's preprocess_v1: ids from tokenizer_image_token (image samples) or one tokenizer call; rounds split at
    </s>, instruction length from tokenizing the round's head up to 'ASSISTANT: ' minus 2, one token less per later
    round when not legacy; a total that does not add up masks the whole sample (returned as None here)."""
    encode = (lambda t: llava_tokenizer_image_token(t, tokenizer)) if has_image else (lambda t: tokenizer(t).input_ids)
    ids = encode(text)
    labels = list(ids)
    sep = " ASSISTANT: "
    cur = 1
    labels[:cur] = [IGNORE_INDEX] * cur
    for i, rou in enumerate(text.split("</s>")):
        if rou == "":
            break
        parts = rou.split(sep)
        assert len(parts) == 2
        round_len = len(encode(rou))
        instruction_len = len(encode(parts[0] + sep)) - 2
        if i != 0 and not legacy:
            round_len -= 1
            instruction_len -= 1
        labels[cur:cur + instruction_len] = [IGNORE_INDEX] * instruction_len
        cur += round_len
    labels[cur:] = [IGNORE_INDEX] * (len(labels) - cur)
    return ids, (labels if cur == len(ids) else None)


def llava_preprocess_plain(reply, tokenizer):
    """LLaVA's preprocess_plain: '<image>' + caption + '\n', everything after tokenizer_image_token('<image>')
    supervised."""
    ids = llava_tokenizer_image_token("<image>" + reply + "\n", tokenizer)
    head = len(llava_tokenizer_image_token("<image>", tokenizer))
    return ids, [IGNORE_INDEX] * head + ids[head:]


def test_reply_tokens_and_only_they_are_supervised(tokenizer):
    tok, legacy = tokenizer
    template = get_template("v1")
    colon = tok.convert_tokens_to_ids(":")
    compared = 0
    for k, (turns, with_image) in enumerate(conversations()):
        if with_image:
            turns = move_image_to_front([(0, "<image>\n" + turns[0][1]), *turns[1:]], True)
        out = tokenize_conversation(turns, template, tok, 1, 4096, f"gen.json: sample {k}")
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
        text, _ = template.render(turns)
        ref_ids, ref_labels = llava_preprocess_v1(text, tok, legacy, with_image)
        assert ids == ref_ids, (k, turns)
        assert ref_labels is not None and labels == ref_labels, (k, turns)
        compared += 1
    assert compared == 240


def test_image_inputs_are_chunked_as_llava_does(tokenizer):
    """Not legacy: the text after <image> starts with its own dummy-prefix '▁' in LLaVA's chunked encoding, which a
    one-pass encoding of the whole prompt lacks; legacy: both have it. Ours is LLaVA's in both modes."""
    tok, legacy = tokenizer
    prompt = get_template("v1").prompt("<image>\nWhat is it?")
    one_pass = tok(prompt).input_ids
    ours = encode_prompt(prompt, tok, 1)
    assert ours == llava_tokenizer_image_token(prompt, tok)
    image_at = ours.index(tok.convert_tokens_to_ids("<image>"))
    assert tok.convert_ids_to_tokens(ours[image_at + 1]) == "▁"
    assert (ours == one_pass) == legacy


def test_plain_template_and_generation_prompts_equal_llava(tokenizer):
    tok, _ = tokenizer
    plain = get_template("plain")
    for k, reply in enumerate(STARTS + ["a red circle.", "2 apples\nEnd"]):
        out = tokenize_conversation([(0, "<image>\nDescribe it."), (1, reply)], plain, tok, 1, 4096, f"p {k}")
        ref_ids, ref_labels = llava_preprocess_plain(reply, tok)
        assert out.input_ids.tolist() == ref_ids and out.labels.tolist() == ref_labels, reply
        assert encode_prompt(plain.prompt("<image>\nDescribe it."), tok, 1) == llava_tokenizer_image_token("<image>", tok)
    for question in QUESTIONS:
        for with_image in (True, False):
            q = ("<image>\n" if with_image else "") + question
            prompt = get_template("v1").prompt(q)
            assert encode_prompt(prompt, tok, 1) == llava_tokenizer_image_token(prompt, tok), q
