"""scripts/finetune.sh's per-family model_max_length (llava/model/family_defaults.py): every family has one, the script
uses it unless MAX_LEN is set, and the image token counts it is sized by are what transformers' own processors make
at the released models' settings (LLaVA-NeXT, Idefics3, Gemma 3: the families whose processors load here)."""

import os
import subprocess
import sys

import pytest
import transformers as tf
from PIL import Image

from llava.model import family_defaults
from tests.helpers.vlm_families import FAMILIES, _config, byte_tokenizer, save_family

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONVERSATION = 512  # room a default leaves beside its largest image


def released_processor(family):
    """(processor, the text that places one image, the image token) at the released checkpoints' settings:
    llava-v1.6 (CLIP-L/336, its five grid pinpoints), Idefics3-8B (364-pixel splits up to 1,456), Gemma 3 (896)."""
    if family == "llava_next":
        tokenizer = byte_tokenizer(["<image>"], bos="<s>", eos="</s>")
        images = tf.LlavaNextImageProcessorPil(
            size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336},
            image_grid_pinpoints=[[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]])
        return tf.LlavaNextProcessor(images, tokenizer, patch_size=14, vision_feature_select_strategy="default",
                                     num_additional_image_tokens=1), "<image>\n", "<image>"
    if family == "idefics3":
        grid = [f"<row_{r}_col_{c}>" for r in range(1, 5) for c in range(1, 5)]
        tokenizer = byte_tokenizer(["<image>", "<fake_token_around_image>", "<global-img>", *grid],
                                   bos="<|begin_of_text|>", eos="<end_of_utterance>")
        images = tf.Idefics3ImageProcessorPil(size={"longest_edge": 1456}, max_image_size={"longest_edge": 364})
        return tf.Idefics3Processor(images, tokenizer, image_seq_len=169), "<image>", "<image>"
    names = {"boi_token": "<start_of_image>", "image_token": "<image_soft_token>", "eoi_token": "<end_of_image>"}
    tokenizer = byte_tokenizer(list(names.values()), bos="<bos>", eos="<eos>", extra_special_tokens=names)
    images = tf.Gemma3ImageProcessorPil(size={"height": 896, "width": 896})
    return tf.Gemma3Processor(images, tokenizer, image_seq_length=256), "<start_of_image>", "<image_soft_token>"


def image_tokens(family, size) -> int:
    processor, placeholder, token = released_processor(family)
    image = Image.new("RGB", size, "white")
    batch = processor(text=[placeholder + "what is it?"], images=[[image]] if family == "idefics3" else [image])
    return batch["input_ids"][0].count(processor.tokenizer.convert_tokens_to_ids(token))


@pytest.mark.parametrize("family", ["llava_next", "idefics3", "gemma3"])
def test_the_default_holds_the_largest_image_transformers_makes(family):
    largest = image_tokens(family, (2000, 2000))  # at or above every processor's largest split
    described = family_defaults.FAMILIES[family]
    assert f"{largest:,}" in described.image_tokens, (largest, described)
    assert largest + CONVERSATION <= described.max_length
    if family == "llava_next":  # an ordinary photo already exceeds LLaVA-1.5's 2048
        assert image_tokens(family, (640, 480)) == 2340 and "2,340" in described.image_tokens


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_has_its_own_default(tmp_path, family):
    _config(family).save_pretrained(tmp_path)
    own_tower, length = family_defaults.defaults(str(tmp_path))
    assert own_tower and length == family_defaults.FAMILIES[_config(family).model_type].max_length


def test_the_script_takes_the_familys_default_unless_max_len_is_set(tmp_path):
    model = save_family(tmp_path / "model", "llava_next")
    env = {**os.environ, "MODEL": model, "DATA": "x.json", "IMAGE_FOLDER": "x", "OUTPUT": str(tmp_path / "out"),
           "PYTHON": sys.executable, "DRY_RUN": "1"}

    def max_length(**extra):
        proc = subprocess.run(["bash", "scripts/finetune_asymlora.sh"], cwd=ROOT, env={**env, **extra},
                              capture_output=True, text=True, check=True)
        argv = proc.stdout.split("command:", 1)[1].split()
        return int(argv[argv.index("--model_max_length") + 1])
    assert max_length() == 4096
    assert max_length(MAX_LEN="3000") == 3000
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    proc = subprocess.run(["bash", "scripts/finetune_asymlora.sh"], cwd=ROOT, env={**env, "MODEL": str(tmp_path / "bad")},
                          capture_output=True, text=True)
    assert proc.returncode != 0 and proc.stderr.strip().splitlines() == [
        f"error: {tmp_path}/bad/config.json is not a model config (not JSON: Expecting property name enclosed in double "
        "quotes: line 1 column 2 (char 1))"]
