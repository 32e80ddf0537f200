"""The planner: parameter counts of a meta-built LLaVA-1.5-7B equal PEFT's and transformers' own counts; memory
figures agree with the hand computation written in docs/planning.md."""

import pytest
import torch
from transformers import LlavaForConditionalGeneration

from llava.train.plan import GIB, llava_config, main, plan


@pytest.fixture(scope="module")
def lora_plan():
    return plan(model="7b", scheme="lora", zero=3, gpus=8, bits=16, batch=16, seq=2048, r=128)


def test_counts_equal_peft_and_transformers_on_the_meta_model(lora_plan):
    peft = pytest.importorskip("peft")
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(llava_config("7b"))
    total = sum(p.numel() for p in model.parameters())
    lora = peft.LoraConfig(r=128, lora_alpha=256, target_modules=r".*language_model.*\.(q|k|v|o|gate|up|down)_proj")
    with torch.device("meta"):
        peft_model = peft.get_peft_model(model, lora)
    peft_trainable = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)
    c = lora_plan["counts"]
    assert c.adapters == peft_trainable == 319_815_680
    assert c.frozen_lm + c.frozen_vision + c.projector == total


def test_memory_matches_the_hand_computation(lora_plan):
    # docs/planning.md: 6.739e9 LM + 0.3035e9 tower params in bf16 over 8 GPUs; 0.3408e9 trainable x 16 B over 8
    hand = {"frozen weights": (6.739e9 + 0.3035e9) * 2 / 8, "trainable weights": 0.3408e9 * 2 / 8,
            "gradients": 0.3408e9 * 2 / 8, "optimizer states": 0.3408e9 * 12 / 8}
    for key, value in hand.items():
        assert lora_plan["memory"][key] == pytest.approx(value, rel=0.10), key
    # activations with checkpointing: 32,768 tokens x (2h x 32 + 34h + 11i) bytes = 17.12e9 B
    assert lora_plan["activations_checkpointed"]["decoder layers"] == pytest.approx(17.12e9, rel=0.10)
    assert lora_plan["activations_checkpointed"]["logits"] / GIB == pytest.approx(5.87, rel=0.01)


def test_cli_prints_the_plan(capsys):
    main(["--model", "7b", "--scheme", "asymlora", "--zero", "3", "--gpus", "8", "--bits", "4"])
    out = capsys.readouterr().out
    assert "trainable 154,804,320" in out and "GiB per GPU" in out and "adapter share of training FLOPs" in out
