"""Tiny random models of the image-text-to-text families people fine-tune, built from each family's own transformers
config classes (a few layers, 64 wide), and processors for the families whose processor transformers builds without
torchvision (LLaVA-NeXT, Idefics3, Gemma 3; the others hold a video processor, which needs torchvision, and no CPU
build of torchvision installs on these machines)."""

from __future__ import annotations

import torch
import transformers as tf
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            head_dim=16, vocab_size=320)
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
IMAGE, VIDEO, VISION_START = 300, 301, 302  # token ids the configs reserve (the processors' tokenizers differ)


def _config(family: str, image_id: int = IMAGE):
    if family in ("qwen2_5_vl", "qwen3_vl"):
        vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64)
        if family == "qwen2_5_vl":
            return tf.Qwen2_5_VLConfig(text_config=dict(TEXT, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}),
                                       vision_config=dict(vision, fullatt_block_indexes=[1]), image_token_id=image_id,
                                       video_token_id=VIDEO, vision_start_token_id=VISION_START)
        return tf.Qwen3VLConfig(text_config=dict(TEXT, rope_scaling={"rope_type": "default", "mrope_section": [2, 3, 3]}),
                                vision_config=dict(vision, deepstack_visual_indexes=[1], num_position_embeddings=16),
                                image_token_id=image_id, video_token_id=VIDEO, vision_start_token_id=VISION_START)
    if family in ("idefics3", "smolvlm"):
        cls = tf.Idefics3Config if family == "idefics3" else tf.SmolVLMConfig
        return cls(text_config=dict(TEXT, model_type="llama"), vision_config=dict(VISION, image_size=64, patch_size=16),
                   image_token_id=image_id, scale_factor=2)
    if family == "gemma3":
        return tf.Gemma3Config(text_config=dict(TEXT, model_type="gemma3_text", sliding_window=16),
                               vision_config=dict(VISION, image_size=64, patch_size=16), mm_tokens_per_image=4,
                               image_token_index=image_id, boi_token_index=VIDEO, eoi_token_index=VISION_START)
    if family in ("llava_next", "llava_onevision"):
        pinpoints = [[32, 32], [32, 64], [64, 32]]
        if family == "llava_next":
            return tf.LlavaNextConfig(text_config=dict(TEXT, model_type="llama"), image_grid_pinpoints=pinpoints,
                                      vision_config=dict(VISION, model_type="clip_vision_model", image_size=32,
                                                         patch_size=8, projection_dim=32), image_token_index=image_id)
        return tf.LlavaOnevisionConfig(text_config=dict(TEXT, model_type="qwen2"), image_grid_pinpoints=pinpoints,
                                       vision_config=dict(VISION, model_type="siglip_vision_model", image_size=32,
                                                          patch_size=8), image_token_index=image_id,
                                       video_token_index=VIDEO)
    if family == "internvl":
        return tf.InternVLConfig(text_config=dict(TEXT, model_type="qwen2"), image_token_id=image_id,
                                 vision_config=dict(VISION, image_size=[32, 32], patch_size=[8, 8]), downsample_ratio=0.5)
    raise ValueError(family)


FAMILIES = ["llava_next", "llava_onevision", "qwen2_5_vl", "qwen3_vl", "idefics3", "smolvlm", "gemma3", "internvl"]
# (language model, projector parts, vision parts) as transformers names them inside `model.model`
ANATOMY = {
    "llava_next": ("language_model", ["multi_modal_projector", "image_newline"], ["vision_tower"]),
    "llava_onevision": ("language_model", ["multi_modal_projector", "image_newline"], ["vision_tower"]),
    "gemma3": ("language_model", ["multi_modal_projector"], ["vision_tower"]),
    "internvl": ("language_model", ["multi_modal_projector"], ["vision_tower"]),
    "idefics3": ("text_model", ["connector"], ["vision_model"]),
    "smolvlm": ("text_model", ["connector"], ["vision_model"]),
    "qwen2_5_vl": ("language_model", ["visual.merger"], ["visual.patch_embed", "visual.rotary_pos_emb", "visual.blocks"]),
    "qwen3_vl": ("language_model", ["visual.merger", "visual.deepstack_merger_list"],
                 ["visual.patch_embed", "visual.pos_embed", "visual.rotary_pos_emb", "visual.blocks"]),
}


def build_model(family: str, image_id: int = IMAGE, seed: int = 0):
    torch.manual_seed(seed)
    return tf.AutoModelForImageTextToText.from_config(_config(family, image_id)).eval()


def byte_tokenizer(specials: list[str], bos: str | None, eos: str, **extra):
    """A byte-level tokenizer (256 byte tokens, no merges) with the family's special tokens."""
    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}  # a set: sorted, for fixed ids
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = tf.PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos, eos_token=eos, pad_token="<pad>",
                                           **extra)
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    return tokenizer


WITH_PROCESSOR = ["llava_next", "idefics3", "gemma3"]


def build_processor(family: str):
    """(processor, image token id) for a family of WITH_PROCESSOR."""
    if family == "llava_next":
        tokenizer = byte_tokenizer(["<image>"], bos="<s>", eos="</s>")
        images = tf.LlavaNextImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                               image_grid_pinpoints=[[32, 32], [32, 64], [64, 32]])
        processor = tf.LlavaNextProcessor(images, tokenizer, patch_size=8, vision_feature_select_strategy="default",
                                          num_additional_image_tokens=1)  # CLIP's CLS, as the released configs say
        return processor, tokenizer.convert_tokens_to_ids("<image>")
    if family == "idefics3":
        grid = [f"<row_{r}_col_{c}>" for r in range(1, 4) for c in range(1, 4)]
        tokenizer = byte_tokenizer(["<image>", "<fake_token_around_image>", "<global-img>", *grid],
                                   bos="<|begin_of_text|>", eos="<end_of_utterance>")
        images = tf.Idefics3ImageProcessorPil(size={"longest_edge": 128}, max_image_size={"longest_edge": 64})
        return tf.Idefics3Processor(images, tokenizer, image_seq_len=4), tokenizer.convert_tokens_to_ids("<image>")
    if family == "gemma3":
        names = {"boi_token": "<start_of_image>", "image_token": "<image_soft_token>", "eoi_token": "<end_of_image>"}
        tokenizer = byte_tokenizer([*names.values(), "<start_of_turn>", "<end_of_turn>"], bos="<bos>", eos="<eos>",
                                   extra_special_tokens=names)
        images = tf.Gemma3ImageProcessorPil(size={"height": 64, "width": 64})
        processor = tf.Gemma3Processor(images, tokenizer, image_seq_length=4)
        return processor, tokenizer.convert_tokens_to_ids("<image_soft_token>")
    raise ValueError(family)


def _content(image: str) -> str:
    return ("{% for c in m['content'] %}{% if c['type'] == 'image' %}" + image + "{% else %}{{ c['text'] }}{% endif %}"
            "{% endfor %}")


# Chat templates in each family's shape (turn markers, where the image goes), each reply inside `{% generation %}`;
# `without_markers` gives the same template as most released ones are: unmarked
TEMPLATES = {
    "llava_next": "{% for m in messages %}{% if m['role'] == 'user' %}USER: " + _content("<image>\n") + " "
                  "{% else %}ASSISTANT:{% generation %} " + _content("") + "</s>{% endgeneration %}{% endif %}"
                  "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}",
    "idefics3": "<|begin_of_text|>{% for m in messages %}{% if m['role'] == 'user' %}User:" + _content("<image>")
                + "<end_of_utterance>\n{% else %}Assistant:{% generation %} " + _content("")
                + "<end_of_utterance>\n{% endgeneration %}{% endif %}{% endfor %}"
                "{% if add_generation_prompt %}Assistant:{% endif %}",
    "gemma3": "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}<start_of_turn>user\n"
              + _content("<start_of_image>") + "<end_of_turn>\n{% else %}<start_of_turn>model\n{% generation %}"
              + _content("") + "<end_of_turn>\n{% endgeneration %}{% endif %}{% endfor %}"
              "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}",
}


def without_markers(template: str) -> str:
    return template.replace("{% generation %}", "").replace("{% endgeneration %}", "")


def save_family(path, family: str, marked: bool = False) -> str:
    """A tiny model of `family` and its processor (its template marked or not) saved as a local model directory."""
    processor, image_id = build_processor(family)
    processor.chat_template = TEMPLATES[family] if marked else without_markers(TEMPLATES[family])
    model, tokenizer = build_model(family, image_id=image_id), processor.tokenizer
    for config in (model.config, model.config.get_text_config(), model.generation_config):  # the tokenizer's ids
        config.bos_token_id, config.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return str(path)
