"""The planner: parameter counts of a meta-built LLaVA-1.5-7B equal PEFT's and transformers' own counts; memory
figures agree with the hand computation written in docs/planning.md."""

import pytest
import torch
from transformers import LlavaForConditionalGeneration

from llava.train.plan import main, plan
from llava.train.plan_model import GIB, llava_config


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


def test_token_count_equals_the_training_inputs(small_data, tiny_tokenizer):
    """The planner's count is what the dataset feeds the model: text ids + image_seq_length per image."""
    from llava.data.dataset import SupervisedDataset
    from llava.data.token_count import count_tokens
    from llava.model.image import ImageTransform, clip_image_processor

    spec, folder = small_data
    counted = count_tokens(spec, tiny_tokenizer)
    ds = SupervisedDataset(spec, tiny_tokenizer, ImageTransform(clip_image_processor(32)), image_folder=folder,
                           image_seq_length=16, model_max_length=10_000)
    assert counted.records == len(ds) == 24 and counted.image_records == 18 and counted.sampled == 24
    assert counted.total(16) == sum(len(ds[i]["input_ids"]) for i in range(len(ds)))
    sampled = count_tokens(spec, tiny_tokenizer, sample=12)
    assert sampled.sampled == 12 and sampled.text_tokens == pytest.approx(counted.text_tokens, rel=0.25)


def test_time_estimate_matches_the_hand_computation():
    """docs/planning.md: LoRA r=128 on mix665k's published size (300 text tokens per record assumed) on 8 A100."""
    from llava.train import estimate
    from llava.train.plan import sizes
    from llava.train.plan_model import count, meta_model

    llava = meta_model("7b", "lora", 128)
    s = sizes(count(llava), llava.config)
    assert s.lm == 6_738_939_904 - 32_064 * 4096 and s.adapters == 319_815_680
    data = estimate.assumed_tokens("mix665k")
    t = estimate.train_time(s, data, estimate.GPUS["a100"], 8)
    # tokens 665,298 x 300 + 624,610 x 576 = 559.4e6; mean length 840.9; per token 6 x 6.6076e9 + 8 x 0.3198e9
    # + 8 x 840.9 x 4096 x 32 = 43.08e9; images 624,610 x (576 x 6 x 20.98e6 + 577 x 2 x 303.5e6) = 2.64e17
    hand_flops = 559.4e6 * 43.08e9 + 2.64e17
    assert t["flops"] == pytest.approx(hand_flops, rel=0.01)
    assert t["gpu_hours"] == pytest.approx(hand_flops / (312e12 * 0.30) / 3600, rel=0.01)
    assert t["wall_hours"] == pytest.approx(t["gpu_hours"] / 8)


def test_cli_estimates_a_table_with_no_data(capsys):
    main(["--recipe", "conversation58k", "--gpu", "h100", "--gpus", "8", "--schemes", "lora,asymlora",
          "--benchmarks", "mme,gqa"])
    out = capsys.readouterr().out
    assert "time on 8 x H100 SXM 80GB" in out and "assumed: 58,000 records" in out
    assert out.count("train ") == 2 and out.count("eval ") == 4 and "GPU-hours" in out.splitlines()[-1]


def test_zero2_against_zero3_bytes_and_choice():
    """The paper recipe on 8 x 80 GB: ZeRO-2 fits and moves far less (ZeRO-3 gathers the frozen 7B base three times
    per micro-step); on 24 GB GPUs only ZeRO-3 is left. Bytes by hand: bf16, ring collectives send 7/8 of a buffer."""
    from llava.train.plan import compare_zero

    cmp = compare_zero("7b", "asymlora", gpus=8, batch=16, seq=2048, global_batch=128, gpu_memory_gib=80)
    trainable = 154_804_320 * 2
    assert cmp["grad_accum"] == 1
    assert cmp["zero2"]["bytes_moved_gb"] * 1e9 == pytest.approx(2 * trainable * 7 / 8)
    weights = 6_738_939_904 * 2 + 303_507_456 * 2 + trainable
    assert cmp["zero3"]["bytes_moved_gb"] * 1e9 == pytest.approx(trainable * 7 / 8 + 3 * weights * 7 / 8)
    assert cmp["zero3"]["memory_gib"] < cmp["zero2"]["memory_gib"] < 0.9 * 80
    assert cmp["choice"] == 2
    assert compare_zero("7b", "asymlora", gpus=8, gpu_memory_gib=24)["choice"] == 3


def test_cli_says_which_zero_stage_to_use(capsys):
    main(["--model", "7b", "--scheme", "asymlora", "--gpus", "8"])
    out = capsys.readouterr().out
    assert "use configs/deepspeed/zero2.json: ZeRO-2 fits" in out
    main(["--model", "7b", "--scheme", "lora", "--gpus", "8", "--gpu-memory", "16"])
    assert "nor does ZeRO-3" in capsys.readouterr().out
