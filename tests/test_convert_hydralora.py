"""A model saved in the AsymLoRA authors' MLLM-HydraLoRA key layout converts to ours and gives the logits of their
maths, written out here: shared A, per-expert B, a biased softmax router on the MLP block input, dense sum."""

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from llava.adapters.attached import adapter_config
from llava.checkpoint import load_checkpoint_model
from llava.commands.convert_hydralora import main as convert_cli
from llava.model.tiny import build_tiny
from tests.helpers.training import tiny_inputs

R, ALPHA, E = 4, 8.0, 3


def authors_checkpoint(directory, model):
    """Random trained-looking tensors in their layout; returns them by (layer, name) for the reference."""
    g = torch.Generator().manual_seed(3)
    text = model.config.text_config
    h, i = text.hidden_size, text.intermediate_size
    peft, non_lora, ref = {}, {}, {}
    prefix = "base_model.model.model.layers"
    for layer in range(text.num_hidden_layers):
        for proj, (d_in, d_out) in {"q": (h, h), "k": (h, h // 2), "v": (h, h // 2), "o": (h, h)}.items():
            a, b = torch.randn(R, d_in, generator=g) * 0.1, torch.randn(d_out, R, generator=g) * 0.1
            peft[f"{prefix}.{layer}.self_attn.{proj}_proj.lora_A.weight"] = a
            peft[f"{prefix}.{layer}.self_attn.{proj}_proj.lora_B.weight"] = b
            ref[(layer, proj)] = (a, b)
        for proj, (d_in, d_out) in {"gate": (h, i), "up": (h, i), "down": (i, h)}.items():
            a = torch.randn(R, d_in, generator=g) * 0.1
            non_lora[f"{prefix}.{layer}.mlp.shared_lora_A_{proj}"] = a
            bs = [torch.randn(d_out, R, generator=g) * 0.1 for _ in range(E)]
            for e, b in enumerate(bs):
                non_lora[f"{prefix}.{layer}.mlp.moe_{proj}.{e}.lora_A"] = a  # stored again per expert
                non_lora[f"{prefix}.{layer}.mlp.moe_{proj}.{e}.lora_B"] = b
            ref[(layer, proj)] = (a, bs)
        w, bias = torch.randn(E, h, generator=g), torch.randn(E, generator=g)
        non_lora[f"{prefix}.{layer}.mlp.router.weight"], non_lora[f"{prefix}.{layer}.mlp.router.bias"] = w, bias
        non_lora[f"{prefix}.{layer}.mlp.original_module.up_proj.weight"] = torch.zeros(1)  # frozen base: skipped
        ref[(layer, "router")] = (w, bias)
    for idx, name in ((0, "linear_1"), (2, "linear_2")):
        for kind in ("weight", "bias"):
            t = getattr(model.model.multi_modal_projector, name).__getattr__(kind).detach() + 0.01
            non_lora[f"base_model.model.model.mm_projector.{idx}.{kind}"] = t
            ref[("projector", name, kind)] = t
    directory.mkdir()
    save_file({k: v.contiguous() for k, v in peft.items()}, str(directory / "adapter_model.safetensors"))
    torch.save(non_lora, directory / "non_lora_trainables.bin")
    return ref


def authors_forward(model, ref, inputs):
    """The tiny base with their maths put in by hooks (test-only)."""
    s = ALPHA / R
    with torch.no_grad():
        for name in ("linear_1", "linear_2"):
            for kind in ("weight", "bias"):
                getattr(getattr(model.model.multi_modal_projector, name), kind).copy_(ref[("projector", name, kind)])
    for layer, block in enumerate(model.model.language_model.layers):
        for proj in "qkvo":
            a, b = ref[(layer, proj)]
            getattr(block.self_attn, f"{proj}_proj").register_forward_hook(
                lambda mod, args, out, a=a, b=b: out + s * (args[0] @ a.t() @ b.t()))
        mlp = block.mlp

        def mlp_forward(x, mlp=mlp, layer=layer):
            w, bias = ref[(layer, "router")]
            routing = torch.softmax(F.linear(x, w, bias), dim=-1)

            def moe(inp, which):
                a, bs = ref[(layer, which)]
                base = getattr(mlp, f"{which}_proj")(inp)
                return base + sum(routing[..., e:e + 1] * (inp @ a.t() @ bs[e].t()) * s for e in range(E))
            return moe(mlp.act_fn(moe(x, "gate")) * moe(x, "up"), "down")
        mlp.forward = mlp_forward
    with torch.no_grad():
        return model(**inputs).logits


def test_converted_checkpoint_gives_the_authors_logits(tmp_path):
    base, _ = build_tiny(seed=0)
    ref = authors_checkpoint(tmp_path / "theirs", base)
    convert_cli(["--checkpoint", str(tmp_path / "theirs"), "--out", str(tmp_path / "ours"), "--alpha", str(ALPHA),
                 "--model-base", "tiny"])
    ours, _, _ = load_checkpoint_model(str(tmp_path / "ours"))
    assert adapter_config(ours).router_bias and adapter_config(ours).num_experts == E
    inputs = tiny_inputs(ours)
    inputs.pop("labels")
    with torch.no_grad():
        got = ours.eval()(**inputs).logits
    want = authors_forward(build_tiny(seed=0)[0].eval(), ref, inputs)
    assert (want - build_tiny(seed=0)[0].eval()(**inputs).logits).abs().max() > 1e-2  # the adapters matter
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
