"""Every checkpoint, intermediate ones included, is complete: it alone rebuilds the model, and resuming runs on."""

import json
import shutil

import pytest
import torch

from llava.adapters import adapter_batch
from llava.checkpoint import load_checkpoint_model
from tests.helpers.training import SCHEMES, logits, run_training


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_intermediate_checkpoint_alone_reproduces_logits_and_resumes(tmp_path, small_data, scheme):
    trainer = run_training(small_data, tmp_path / "run", scheme, max_steps=2)
    ckpt = tmp_path / "copied-checkpoint"
    shutil.copytree(tmp_path / "run" / "checkpoint-2", ckpt)  # no final save next to it
    files = {p.name for p in ckpt.iterdir()}
    assert {"llava_adapters.json", "llava_adapters.safetensors", "config.json", "llava_base.json",
            "preprocessor_config.json", "tokenizer.json"} <= files
    task_ids = torch.tensor([0, 2]) if scheme == "asymlora_tasks" else None
    expected = logits(trainer.model, None, task_ids)
    reloaded, tokenizer, _ = load_checkpoint_model(str(ckpt))
    base, _, _ = load_checkpoint_model(str(ckpt), load_weights=False)
    assert not torch.allclose(logits(base, None), expected[:, :, :])  # training changed something
    torch.testing.assert_close(logits(reloaded, tokenizer, task_ids), expected, atol=0, rtol=0)  # bit-identical
    # Heads, routers and projector are restored exactly.
    trained = dict(trainer.model.named_parameters())
    for name, p in reloaded.named_parameters():
        if "lora_" in name or "router" in name or "multi_modal_projector" in name:
            assert torch.equal(p, trained[name]), name

    resumed = run_training(small_data, tmp_path / "run", scheme, max_steps=4,
                           extra=["--resume_from_checkpoint", str(tmp_path / "run" / "checkpoint-2")])
    assert resumed.state.global_step == 4
    history = json.loads((tmp_path / "run" / "checkpoint-4" / "trainer_state.json").read_text())["log_history"]
    assert [h["step"] for h in history if "loss" in h] == [1, 2, 3, 4]


@pytest.mark.parametrize("scheme", ["asymlora", "mixlora"])
def test_a_bf16_load_casts_the_adapters_once_and_answers_as_before(tmp_path, small_data, scheme):
    """Inference in bf16 gets bf16 adapter weights at load (not a cast per layer and decoding step); the logits are
    those of fp32 adapters cast at every step (exactly where the forward cast the same weights the same way)."""
    from PIL import Image

    from llava.adapters.inject import adapter_modules
    from llava.adapters.io import load_adapters
    from llava.inference import Generator

    run_training(small_data, tmp_path / "run", scheme, max_steps=2)
    cast, tokenizer, processor = load_checkpoint_model(str(tmp_path / "run"), dtype="bf16")
    per_step, _, _ = load_checkpoint_model(str(tmp_path / "run"), dtype="bf16", load_weights=False)
    load_adapters(per_step, str(tmp_path / "run"))  # as loading did before: fp32 adapters beside a bf16 base

    def adapter_dtypes(model):
        return {p.dtype for _, m in adapter_modules(model) for n, p in m.named_parameters() if not n.startswith("base.")}

    assert adapter_dtypes(cast) == {torch.bfloat16} and adapter_dtypes(per_step) == {torch.float32}
    n = cast.config.image_seq_length
    ids = torch.tensor([[1] + [cast.config.image_token_index] * n + [60, 70, 80]] * 2)
    px = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    outs = []
    for model in (cast, per_step):
        model.eval()
        with torch.no_grad(), adapter_batch(model, token_mask=torch.ones_like(ids)):
            outs.append(model(input_ids=ids, pixel_values=px).logits.float())
    if scheme == "asymlora":
        assert torch.equal(outs[0], outs[1])
    else:  # mixlora's factor-pairing router computes in fp32 from its weights: bf16 weights round them
        torch.testing.assert_close(outs[0], outs[1], rtol=0.05, atol=0.05)
    images = [Image.new("RGB", (40, 40), (30 * i, 200, 90)) for i in range(3)]
    answers = []
    for model in (cast, per_step):
        generator = Generator(model, tokenizer, processor)
        answers.append(generator.generate_ids([generator.prompt_for(f"what is {i}?", True) for i in range(3)], images, 5))
    assert answers[0] == answers[1]
