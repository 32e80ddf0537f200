"""Router losses against their formulas written out here (the AsymLoRA authors' `hydra` and Switch's `switch` balance
losses, ST-MoE's router z-loss): the applied router gradient is the gradient of exactly the logged value, with padding,
several layers and samples, gradient accumulation and gradient checkpointing."""

import pytest
import torch
import torch.nn.functional as F

from llava.adapters import AdapterConfig, inject_adapters
from llava.adapters.attached import routing_state
from llava.adapters.routing import BlockRouter
from llava.model.tiny import build_tiny
from llava.train.activation_checkpointing import language_inputs_require_grad


def reference_loss(kind, inputs, routers, mask):
    """The formula, from the router inputs x_l [B, S, d] captured in the forward, differentiable in the routers."""
    m = mask.float().unsqueeze(-1)  # [B, S, 1]
    if kind == "z":  # per layer and sample: mean over attended tokens of logsumexp(logits)^2; mean over both
        z = [torch.logsumexp(F.linear(x, r.weight, r.bias).float(), -1).square() for x, r in zip(inputs, routers)]
        return torch.stack([(zl * m[..., 0]).sum(1) / m[..., 0].sum(1) for zl in z]).mean()
    probs = [torch.softmax(F.linear(x, r.weight, r.bias).float(), -1) for x, r in zip(inputs, routers)]
    tops = [F.one_hot(p.argmax(-1), p.shape[-1]).float() for p in probs]
    if kind == "hydra":  # per sample: mean over layers and attended tokens; sum_e P_e H_e; mean over samples
        count = m.sum(1)
        big_p = torch.stack([(p * m).sum(1) / count for p in probs]).mean(0)
        big_h = torch.stack([(h * m).sum(1) / count for h in tops]).mean(0)
        return (big_p * big_h).sum(-1).mean()
    values = []  # switch: per router E * sum_e f_e P_e over counted tokens; mean over routers
    for p, h in zip(probs, tops):
        n = m.sum()
        values.append(p.shape[-1] * (((h * m).sum((0, 1)) / n) * ((p * m).sum((0, 1)) / n)).sum())
    return torch.stack(values).mean()


def model_for(kind):
    model, _ = build_tiny(seed=0)
    torch.manual_seed(5)
    balance = kind if kind != "z" else "hydra"
    inject_adapters(model, AdapterConfig.preset("asymlora", r=4, dropout=0.0, balance_loss=balance))  # fresh B = 0
    routers = [m for m in model.modules() if isinstance(m, BlockRouter)]
    assert len(routers) == 2  # two decoder layers, one router per MLP block
    return model.train(), routers


def batch(seed, vocab):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (3, 9), generator=g)
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0  # padding
    mask[2, 4:] = 0
    return ids, mask


@pytest.mark.parametrize("kind", ["hydra", "switch", "z"])
@pytest.mark.parametrize("checkpointing", [None, True, False])  # off, reentrant, non-reentrant
def test_applied_gradient_is_the_logged_values_gradient(kind, checkpointing):
    coef, ga = 0.05, 2
    model, routers = model_for(kind)
    if checkpointing is not None:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": checkpointing})
        language_inputs_require_grad(model)
    captured = []
    for r in routers:  # the block input each router sees (first forward only: checkpointing recomputes)
        r.register_forward_pre_hook(lambda mod, args: captured.append(args[0].detach()) if len(captured) < 2 else None)
    state = routing_state(model)
    reference_total, logged = 0.0, []
    for micro in range(ga):
        ids, mask = batch(micro, model.config.text_config.vocab_size)
        captured.clear()
        state.begin_batch(None, mask)
        state.aux_grad_scale, state.z_grad_scale = (0.0, coef / ga) if kind == "z" else (coef / ga, 0.0)
        out = model(input_ids=ids, attention_mask=mask, labels=ids)
        balance = state.finish_forward()
        logged.append(state.z_value if kind == "z" else balance)
        out.loss.backward()  # B = 0: the LM loss sends the routers nothing; their gradient is the router loss's
        ref = reference_loss(kind, captured, routers, mask)
        assert logged[-1].item() == pytest.approx(ref.item(), rel=1e-6, abs=1e-7)
        reference_total = reference_total + coef / ga * ref
    applied = [p.grad.clone() for r in routers for p in r.parameters()]
    reference = torch.autograd.grad(reference_total, [p for r in routers for p in r.parameters()])
    assert all(g.abs().sum() > 0 for g in applied)
    for got, want in zip(applied, reference):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-8)


def test_hydra_matches_the_authors_formula_not_a_per_layer_sum():
    """One value for all layers pooled per sample: not L x a per-layer loss (the old mismatch)."""
    model, routers = model_for("hydra")
    ids, mask = batch(0, model.config.text_config.vocab_size)
    routing_state(model).begin_batch(None, mask)
    model(input_ids=ids, attention_mask=mask)
    value = routing_state(model).finish_forward().item()
    assert 0.0 < value <= 1.0  # a mean over samples of sum_e P_e H_e, each at most 1
