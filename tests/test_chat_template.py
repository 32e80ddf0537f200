"""The tokenizer chat_template fallback: replies + end-of-turn supervised, prompts end with the assistant header."""

import pytest

from llava.constants import IGNORE_INDEX
from llava.conversation import get_template
from llava.data import DataError
from llava.data.preprocess import tokenize_conversation
from llava.model.tiny import build_tiny_tokenizer

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture
def chat_tokenizer():
    tok = build_tiny_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = CHATML
    return tok


def test_spans_and_prompt(chat_tokenizer):
    template = get_template("chat_template", chat_tokenizer)
    turns = [(0, "<image>\nIs it red?"), (1, "yes"), (0, "Shape?"), (1, "a circle")]
    text, spans = template.render(turns)
    assert [text[s:e] for s, e in spans] == ["yes<|im_end|>\n", "a circle<|im_end|>\n"]
    assert template.prompt("Q") == "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    tok = tokenize_conversation(turns, template, chat_tokenizer, 4, 512, "f.json: sample c1")
    supervised = chat_tokenizer.decode(tok.input_ids[tok.labels != IGNORE_INDEX])
    assert supervised.replace(" ", "") == "yes<|im_end|>\nacircle<|im_end|>\n".replace(" ", "")
    assert tok.input_ids[0] != chat_tokenizer.bos_token_id  # the template text decides the special tokens
    assert (tok.input_ids == chat_tokenizer.convert_tokens_to_ids("<image>")).sum() == 4


def test_template_that_is_not_prefix_stable_is_refused(chat_tokenizer):
    chat_tokenizer.chat_template = "{% for m in messages|reverse %}{{ m['content'] }};{% endfor %}"
    template = get_template("chat_template", chat_tokenizer)
    with pytest.raises(DataError, match="f.json: sample c2: template/tokenizer mismatch"):
        tokenize_conversation([(0, "q"), (1, "a"), (0, "q2"), (1, "b")], template, chat_tokenizer, 4, 512,
                              "f.json: sample c2")


def test_needs_a_chat_template():
    with pytest.raises(ValueError, match="needs a tokenizer that has a chat_template"):
        get_template("chat_template", build_tiny_tokenizer())
