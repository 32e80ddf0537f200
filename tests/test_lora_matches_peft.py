"""Our lora layer is LoRA: same weights as PEFT's -> same outputs and gradients (fp32, 1e-6)."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn

from llava.adapters import AdapterConfig, inject_adapters


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = nn.Linear(48, 40)


class Wrapper(nn.Module):
    """Shape of a causal LM as inject_adapters sees it: .model.layers."""

    def __init__(self):
        super().__init__()
        self.model = nn.Module()
        self.model.layers = nn.ModuleList([Block()])

    def forward(self, x):
        return self.model.layers[0].q_proj(x)


def test_lora_layer_equals_peft_outputs_and_grads():
    torch.manual_seed(0)
    ours = Wrapper()
    theirs = Wrapper()
    theirs.load_state_dict(ours.state_dict())
    inject_adapters(ours, AdapterConfig(scheme="lora", r=8, alpha=16, dropout=0.0, targets=["q_proj"]))
    peft_model = get_peft_model(theirs, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj"]))
    layer = ours.model.layers[0].q_proj
    with torch.no_grad():
        layer.lora_B.normal_()  # non-zero B so the adapter contributes
    peft_layer = peft_model.base_model.model.model.layers[0].q_proj
    with torch.no_grad():
        peft_layer.lora_A["default"].weight.copy_(layer.lora_A)
        peft_layer.lora_B["default"].weight.copy_(layer.lora_B)

    x1 = torch.randn(3, 7, 48, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1, y2 = ours(x1), peft_model(x2)
    assert not torch.allclose(y1, layer.base(x1))  # the adapter is really in the path
    torch.testing.assert_close(y1, y2, atol=1e-6, rtol=1e-6)
    grad_out = torch.randn_like(y1)
    y1.backward(grad_out)
    y2.backward(grad_out)
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(layer.lora_A.grad, peft_layer.lora_A["default"].weight.grad, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(layer.lora_B.grad, peft_layer.lora_B["default"].weight.grad, atol=1e-6, rtol=1e-6)


class Stack(nn.Module):
    """Four decoder layers with attention and MLP linears, as inject_adapters and PEFT see a causal LM."""

    def __init__(self):
        super().__init__()
        self.model = nn.Module()
        self.model.layers = nn.ModuleList()
        for _ in range(4):
            layer = nn.Module()
            layer.self_attn = nn.Module()
            layer.self_attn.q_proj = nn.Linear(8, 8)
            layer.mlp = nn.Module()
            layer.mlp.up_proj = nn.Linear(8, 8)
            self.model.layers.append(layer)


def adapted(names, suffix: str) -> list[str]:
    return sorted(n.removesuffix(suffix) for n in names if n.endswith(suffix))


def test_layer_selection_adapts_the_modules_peft_layers_to_transform_does():
    ours = inject_adapters(Stack(), AdapterConfig(scheme="lora", r=2, alpha=4, targets=["q_proj", "up_proj"],
                                                  layers=[1, 3]))
    theirs = get_peft_model(Stack(), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "up_proj"],
                                                layers_to_transform=[1, 3]))
    ours_names = adapted(dict(ours.named_parameters()), ".lora_A")  # ours: a parameter; PEFT's: a module dict
    peft_names = [n.removeprefix("base_model.model.") for n in adapted(dict(theirs.named_modules()), ".lora_A")]
    assert ours_names == peft_names == ["model.layers.1.mlp.up_proj", "model.layers.1.self_attn.q_proj",
                                        "model.layers.3.mlp.up_proj", "model.layers.3.self_attn.q_proj"]


def test_layer_selection_outside_the_stack_is_refused():
    with pytest.raises(ValueError, match="decoder layers 0-3"):
        inject_adapters(Stack(), AdapterConfig(scheme="lora", r=2, alpha=4, targets=["q_proj"], layers=[2, 4]))
    with pytest.raises(ValueError, match="indices >= 0"):
        AdapterConfig(scheme="lora", layers=[-1])
