"""Compiled decoding (`Generator(compiled=True)`, `--compile`), every scheme on the tiny model:

* the decoding step with a static KV cache compiles whole (torch.compile fullgraph=True: a graph break fails) and
  gives the eager step's logits, step after step (AOTAutograd's tracing, without the code generation a GPU does);
* a compiled Generator (static cache, prompts left-padded to a bucket, the cache sized to a bucket and generation
  stopped at the limit) answers a batch of mixed prompts (an image and a text-only one, different lengths, two task
  heads) with exactly the eager Generator's greedy tokens, call after call.
"""

import pytest
import torch
from PIL import Image
from transformers import StaticCache

from llava.adapters import AdapterConfig, adapter_batch, inject_adapters
from llava.inference import Generator
from llava.model.builder import load_model

SCHEMES = {
    "lora": dict(scheme="lora", r=8),
    "asymlora paper preset": dict(scheme="asymlora", r=8, num_experts=3, router_scope="mlp_block", router_bias=True,
                                  mixture_targets=["gate_proj", "up_proj", "down_proj"]),
    "asymlora task x expert": dict(scheme="asymlora", r=8, num_experts=3, num_tasks=2),
    "asymlora prompt routers": dict(scheme="asymlora", r=8, num_experts=3, router_input="prompt"),
    "moe_lora top-2": dict(scheme="moe_lora", r=8, num_experts=3, router="topk", top_k=2),
    "mixlora": dict(scheme="mixlora", r=2, num_experts=8),
}


def adapted(settings: dict):
    model, tokenizer, processor = load_model("tiny")
    torch.manual_seed(0)  # the adapters' A and routers
    inject_adapters(model, AdapterConfig(**settings, task_names=["a", "b"]))
    with torch.no_grad():  # B starts at zero: give every head something to say
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(len(name)))
    return model.eval(), tokenizer, processor


@pytest.mark.parametrize("name", list(SCHEMES))
def test_the_decoding_step_compiles_whole_and_matches_eager(name):
    model, _, _ = adapted(SCHEMES[name])
    n = model.config.image_seq_length
    ids = torch.tensor([[1] + [model.config.image_token_index] * n + [60, 70, 80]] * 2)
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    step = torch.compile(model, fullgraph=True, backend="aot_eager")
    torch._dynamo.reset()
    with torch.no_grad(), adapter_batch(model, task_ids=torch.tensor([0, 1])):
        logits, tokens = {}, []
        for mode in ("eager", "compiled"):
            cache = StaticCache(config=model.config, max_cache_len=ids.shape[1] + 8)
            out = model(input_ids=ids, pixel_values=pixels, past_key_values=cache, use_cache=True)  # prefill: eager
            token, rows = out.logits[:, -1:].argmax(-1), []
            for k in range(4):
                position = torch.tensor([ids.shape[1] + k])
                forward = model if mode == "eager" else step
                out = forward(input_ids=token, past_key_values=cache, use_cache=True, cache_position=position)
                rows.append(out.logits[:, -1])
                if mode == "eager":
                    tokens.append(out.logits[:, -1:].argmax(-1))
                token = tokens[k]  # both modes read the same tokens: a near-tie cannot send them apart
            logits[mode] = torch.stack(rows)
    torch._dynamo.reset()
    torch.testing.assert_close(logits["compiled"], logits["eager"], rtol=1e-4, atol=1e-4)  # fp32, decomposed ops


@pytest.mark.parametrize("name", list(SCHEMES))
def test_compiled_generator_answers_as_eager(name, capfd):
    model, tokenizer, processor = adapted(SCHEMES[name])
    eager = Generator(model, tokenizer, processor)
    compiled = Generator(model, tokenizer, processor, compiled=True)
    prompts = [eager.prompt_for("what shape is it?", True), eager.prompt_for("say something long about it", False)]
    images = [Image.new("RGB", (40, 40), "red"), None]
    tasks = [0, 1] if "task" in name else None
    want = eager.generate_ids(prompts, images, [7, 5], task_ids=tasks)
    assert any(want), want  # the adapted model says something before its end-of-sequence token
    capfd.readouterr()
    for _ in range(2):  # a second call reuses the bucketed shapes
        assert compiled.generate_ids(prompts, images, [7, 5], task_ids=tasks) == want
    assert "[transformers]" not in capfd.readouterr().err  # no warning: a stopping rule or a compile it cannot do
