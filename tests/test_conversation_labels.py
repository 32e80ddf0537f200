"""Templates render LLaVA's exact strings, and labels supervise exactly the assistant replies + their </s>."""

import pytest

from llava.constants import IGNORE_INDEX
from llava.conversation import get_template
from llava.data.preprocess import move_image_to_front, tokenize_conversation

TURNS = [(0, "Is it red?"), (1, "yes"), (0, "What shape?"), (1, "a circle")]


# LLaVA's conversation.py strings, written out by hand (not imported from our module)
USER_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
               "detailed, and polite answers to the user's questions.")
HUMAN_SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. The assistant gives "
                "helpful, detailed, and polite answers to the human's questions.")
EXCHANGES = [("Is it red?", "yes"), ("What shape?", "a circle"), ("How many?", "2"), ("Where?", "top left")]


@pytest.mark.parametrize("version,system", [("v1", USER_SYSTEM), ("vicuna_v1", USER_SYSTEM), ("llava_v1", HUMAN_SYSTEM)])
@pytest.mark.parametrize("rounds", [1, 2, 3, 4])
def test_two_style_templates_render_llavas_strings(version, system, rounds):
    turns = [t for q, a in EXCHANGES[:rounds] for t in ((0, q), (1, a))]
    text, spans = get_template(version).render(turns)
    expected = system + " " + "".join(f"USER: {q} ASSISTANT: {a}</s>" for q, a in EXCHANGES[:rounds])
    assert text == expected
    assert [text[s:e] for s, e in spans] == [a + "</s>" for _, a in EXCHANGES[:rounds]]
    assert get_template(version).prompt("Q") == system + " USER: Q ASSISTANT:"


def test_plain_template_is_image_then_caption_then_newline():
    """LLaVA's preprocess_plain: '<image>' + caption + '\\n'; the question text is dropped."""
    turns = move_image_to_front([(0, "Describe the image.\n<image>"), (1, "a cat")], has_image=True)
    text, spans = get_template("plain").render(turns)
    assert text == "<image>a cat\n" and [text[s:e] for s, e in spans] == ["a cat\n"]


def test_only_the_image_turn_is_stripped():
    turns = move_image_to_front([(0, " <image>\nWhat is it? "), (1, " a dog "), (0, " and now? "), (1, "a cat ")], True)
    assert turns == [(0, "<image>\nWhat is it?"), (1, " a dog "), (0, " and now? "), (1, "a cat ")]


def test_two_turn_vicuna_mask_token_by_token(tiny_tokenizer):
    tok = tokenize_conversation(TURNS, get_template("vicuna_v1"), tiny_tokenizer, 16, 512, "f.json: sample 0")
    tokens = tiny_tokenizer.convert_ids_to_tokens(tok.input_ids.tolist())
    mask = [int(label != IGNORE_INDEX) for label in tok.labels.tolist()]
    # Hand-written: the last 22 tokens of the two rounds, 1 = supervised.
    expected_tail = [
        (":", 0), ("ĠIs", 0), ("Ġi", 0), ("t", 0), ("Ġred", 0), ("?", 0), ("ĠASSISTAN", 0), ("T", 0), (":", 0),
        ("Ġyes", 1), ("</s>", 1),
        ("USER", 0), (":", 0), ("ĠWhat", 0), ("Ġshape", 0), ("?", 0), ("ĠASSISTAN", 0), ("T", 0), (":", 0),
        ("Ġa", 1), ("Ġcircle", 1), ("</s>", 1),
    ]
    assert list(zip(tokens, mask))[-len(expected_tail):] == expected_tail
    assert tokens[0] == "<s>" and sum(mask[: -len(expected_tail)]) == 0  # system prompt and first USER: masked
    supervised = tok.labels[tok.labels != IGNORE_INDEX]
    assert supervised.tolist() == tok.input_ids[tok.labels != IGNORE_INDEX].tolist()  # labels are the ids themselves


def test_image_goes_first_and_expands_masked(tiny_tokenizer):
    turns = move_image_to_front([(0, "What is it? <image>"), (1, "a dog")], has_image=True)
    assert turns[0][1] == "<image>\nWhat is it?"
    tok = tokenize_conversation(turns, get_template("v1"), tiny_tokenizer, 16, 512, "f.json: sample 1")
    image_id = tiny_tokenizer.convert_tokens_to_ids("<image>")
    positions = (tok.input_ids == image_id).nonzero().flatten().tolist()
    assert len(positions) == 16 and positions == list(range(positions[0], positions[0] + 16))
    assert (tok.labels[positions] == IGNORE_INDEX).all()
