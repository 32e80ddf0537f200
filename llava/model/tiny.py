"""The `tiny` preset: a LLaVA with the real architecture at toy size, built from configs with no download.

Tests, the demo and `MODEL=tiny` runs use it. Same seed -> same weights and the same tokenizer, so runs reproduce.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    PreTrainedTokenizerFast,
)

from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.conversation import LLAVA_SYSTEM
from llava.model.zero import gathered_for_write

TINY_IMAGE_SIZE = 32
TINY_PATCH_SIZE = 8
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", DEFAULT_IMAGE_TOKEN]

# Enough English for byte-level BPE to learn merges for the templates and the demo's questions and answers.
_CORPUS = [
    LLAVA_SYSTEM,
    "USER: ASSISTANT: What shape is in the image? What is the shape? What color is the shape?",
    "Is there a circle in the image? Is there a rectangle? Is there a triangle? Does the image contain a shape?",
    "Is there a red shape? Is there a green shape? Is there a blue shape? Is there not a gray shape?",
    "circle rectangle triangle red green blue black gray teal brown yellow yes no",
    "Answer the question using a single word or phrase. Describe the image briefly.",
    "The image shows a small colored shape on a white background.",
    "the a an of in on is are was what which how many where who color shape image picture photo question answer",
    "0 1 2 3 4 5 6 7 8 9 10 one two three four five six seven eight nine ten",
]


def build_tiny_tokenizer(vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on a fixed corpus, Llama-style: <s> prepended, </s> as eos."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": DEFAULT_IMAGE_TOKEN},
        model_max_length=512,
        padding_side="right",
    )


def tiny_config(vocab_size: int, image_token_index: int) -> LlavaConfig:
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        image_size=TINY_IMAGE_SIZE,
        patch_size=TINY_PATCH_SIZE,
        projection_dim=32,
    )
    text = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
        tie_word_embeddings=False,
        # std 0.02 at hidden 64 caps |logits| near 0.2: a frozen random lm_head could never put mass on an answer,
        # and adapters would have nothing to learn with. 0.15 gives the frozen base a usable logit range.
        initializer_range=0.15,
    )
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token_index,
        image_seq_length=(TINY_IMAGE_SIZE // TINY_PATCH_SIZE) ** 2,
        projector_hidden_act="gelu",
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )


def build_tiny(seed: int = 0, dtype: torch.dtype = torch.float32, attn_implementation: str = "sdpa"):
    """Return (model, tokenizer) for the tiny preset; deterministic in `seed`."""
    tokenizer = build_tiny_tokenizer()
    config = tiny_config(len(tokenizer), tokenizer.convert_tokens_to_ids(DEFAULT_IMAGE_TOKEN))
    config._attn_implementation = attn_implementation
    model = LlavaForConditionalGeneration(config)
    _seeded_init(model, seed)
    return model.to(dtype), tokenizer


def _seeded_init(model: LlavaForConditionalGeneration, seed: int) -> None:
    """Weights as a function of `seed` alone, parameter by parameter in name order.

    Under DeepSpeed ZeRO-3 transformers builds sub-models inside `zero.Init` with its own RNG use; re-initialising
    here (through a gather) keeps the preset identical with and without ZeRO, so checkpoints reload onto the same
    base. Norms start at 1, biases at 0, the language model at std 0.15 (see tiny_config), the rest at 0.02.
    """
    generator = torch.Generator().manual_seed(seed)
    params = sorted(model.named_parameters(), key=lambda item: item[0])
    with gathered_for_write(p for _, p in params), torch.no_grad():
        for name, p in params:
            if name.endswith("bias"):
                p.zero_()
            elif "norm" in name:
                p.fill_(1.0)
            else:
                std = 0.15 if ("language_model" in name or name.startswith("lm_head")) else 0.02
                p.copy_(torch.randn(p.shape, generator=generator) * std)
