"""Our lora layer is LoRA: same weights as PEFT's -> same outputs and gradients (fp32, 1e-6)."""

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
