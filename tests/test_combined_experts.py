"""The paper's MoE-LoRA baseline on the tiny preset: LoRAs trained separately per task, combined as the experts of
one moe_lora adapter (llava.commands.combine_experts), the routers then trained alone on the tasks' union."""

import json

import pytest
import torch
from safetensors.torch import load_file

from llava.adapters.inject import adapter_modules
from llava.checkpoint import load_checkpoint_model
from llava.commands.combine_experts import combine, main
from llava.train.train import train
from tests.helpers.training import logits


def run(data_spec, folder, out, extra=(), steps=3):
    args = ["--model_name_or_path", "tiny", "--data_path", data_spec, "--image_folder", folder, "--output_dir",
            str(out), "--lora_enable", "True", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0.0",
            "--per_device_train_batch_size", "4", "--learning_rate", "1e-2", "--mm_projector_lr", "1e-2",
            "--max_steps", str(steps), "--save_steps", "100", "--logging_steps", "1", "--report_to", "none",
            "--model_max_length", "256", "--disable_tqdm", "True", "--seed", "0", "--use_cpu", "True", *extra]
    return train(args)


@pytest.fixture(scope="module")
def experts(tmp_path_factory):
    """Two LoRAs, each trained on one task alone; the first with its projector frozen, the second tuning it."""
    from tests.helpers.data import write_small_data

    root = tmp_path_factory.mktemp("experts")
    spec, folder = write_small_data(root)
    paths = dict(part.split("=") for part in spec.split(","))
    dirs = []
    for i, task in enumerate(("shape", "color")):
        out = root / f"lora-{task}"
        run(f"{task}={paths[task]}", folder, out, ["--seed", str(i + 1), "--freeze_mm_mlp_adapter", "True"])
        dirs.append(str(out))
    return dirs, spec, folder, root


def force(model, expert: int) -> None:
    """Every router sends all of its gate to `expert` (softmax of a bias of +-1e4: exactly one-hot in fp32)."""
    for _, module in adapter_modules(model):
        router = getattr(module, "router", None)
        if router is not None:
            with torch.no_grad():
                router.weight.zero_()
                router.bias.fill_(-1e4)
                router.bias[expert] = 1e4


def test_forced_to_an_expert_the_combined_model_is_that_lora(experts, tmp_path):
    dirs, _, _, _ = experts
    out = tmp_path / "combined"
    config = combine(dirs, str(out))
    assert config.scheme == "moe_lora" and config.num_experts == 2 and config.mixture_targets is None
    for e, directory in enumerate(dirs):
        want = logits(load_checkpoint_model(directory)[0], None)
        combined, _, _ = load_checkpoint_model(str(out))
        force(combined, e)
        got = logits(combined, None)
        assert torch.allclose(got, want, atol=1e-5, rtol=0), (e, (got - want).abs().max())
    base = logits(load_checkpoint_model(dirs[0], load_weights=False)[0], None)
    assert not torch.allclose(logits(load_checkpoint_model(dirs[0])[0], None), base, atol=1e-3)  # the LoRAs matter


def test_the_projector_is_the_experts_mean(experts, tmp_path):
    dirs, spec, folder, root = experts
    tuned = root / "lora-shape-projector-tuned"
    run(spec.split(",")[0], folder, tuned, ["--seed", "3"])
    combine([dirs[0], str(tuned)], str(tmp_path / "combined"))
    a, b = load_file(f"{dirs[0]}/llava_adapters.safetensors"), load_file(f"{tuned}/llava_adapters.safetensors")
    c = load_file(f"{tmp_path}/combined/llava_adapters.safetensors")
    keys = [k for k in a if k.startswith("model.multi_modal_projector.")]
    assert keys and all(torch.allclose(c[k], (a[k] + b[k]) / 2) for k in keys)
    assert any(not torch.equal(a[k], b[k]) for k in keys)


def test_routers_train_alone_on_the_union(experts, tmp_path):
    dirs, spec, folder, _ = experts
    combined = tmp_path / "combined"
    combine(dirs, str(combined))
    out = tmp_path / "routed"
    run(spec, folder, out, ["--init_adapters", str(combined), "--train_routers_only", "True",
                            "--freeze_mm_mlp_adapter", "True"], steps=3)
    before, after = load_file(f"{combined}/llava_adapters.safetensors"), load_file(f"{out}/llava_adapters.safetensors")
    assert before.keys() == after.keys()
    routers = [k for k in before if ".router." in k]
    assert routers and all(not torch.equal(before[k], after[k]) for k in routers if k.endswith("weight"))
    assert all(torch.equal(before[k], after[k]) for k in before if k not in routers)  # experts, projector fixed
    saved = json.loads((out / "llava_adapters.json").read_text())
    assert saved["scheme"] == "moe_lora" and saved["num_experts"] == 2


def test_mistakes_end_in_one_line(experts, tmp_path, capsys):
    dirs, _, _, _ = experts
    with pytest.raises(SystemExit, match="at least two expert LoRAs"):
        main(["--experts", dirs[0], "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="no llava_adapters.json"):
        main(["--experts", f"{dirs[0]},{tmp_path}", "--out", str(tmp_path / "x")])
