"""The fused adapter family against its definitions: loop references, lora, identity at init, task isolation."""

import pytest
import torch
from torch import nn

from llava.adapters import AdapterConfig, AdapterLinear, adapter_batch, inject_adapters
from llava.adapters.attached import routing_state
from llava.adapters.reference import loop_delta
from llava.adapters.schemes import MixLoRA
from llava.adapters.state import RoutingState
from llava.train.activation_checkpointing import language_inputs_require_grad
from tests.helpers.training import tiny_inputs


def make_layer(scheme, num_experts=3, num_tasks=1, r=4, seed=0):
    torch.manual_seed(seed)
    base = nn.Linear(24, 20)
    base.requires_grad_(False)
    layer = AdapterLinear(base, scheme, r=r, alpha=2 * r, num_experts=num_experts, num_tasks=num_tasks,
                          state=RoutingState())
    with torch.no_grad():
        layer.lora_B.normal_()
    return layer


def grads(layer, x):
    return {"x": x.grad, **{n: p.grad for n, p in layer.named_parameters() if p.requires_grad}}


@pytest.mark.parametrize("scheme,num_experts,num_tasks", [("asymlora", 3, 1), ("asymlora", 2, 3), ("asymlora", 1, 3),
                                                          ("moe_lora", 3, 1)])
def test_fused_equals_loop_reference(scheme, num_experts, num_tasks):
    fused = make_layer(scheme, num_experts, num_tasks)
    loop = make_layer(scheme, num_experts, num_tasks)
    task_ids = torch.tensor([2, 0]) if num_tasks > 1 else None
    for layer in (fused, loop):
        layer.state.begin_batch(task_ids)
    x1 = torch.randn(2, 5, 24, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1 = fused(x1)
    gates = loop.router(x2)[0] if num_experts > 1 else x2.new_ones(2, 5, 1)
    y2 = loop.base(x2) + loop_delta(loop, x2, gates, task_ids)
    torch.testing.assert_close(y1, y2, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(y1)
    y1.backward(g)
    y2.backward(g)
    g1, g2 = grads(fused, x1), grads(loop, x2)
    assert g1.keys() == g2.keys()
    for name in g1:  # fp32 summation order differs (fused einsum vs loop): tolerance scales with the gradient's size
        scale = max(1.0, g2[name].abs().max().item())
        torch.testing.assert_close(g1[name], g2[name], rtol=1e-5, atol=1e-6 * scale, msg=name)


def test_asymlora_with_one_head_is_lora():
    lora = make_layer("lora", 1, 1)
    asym = make_layer("asymlora", 1, 1)
    x = torch.randn(3, 4, 24)
    torch.testing.assert_close(asym(x), lora(x), rtol=0, atol=0)
    assert asym.lora_B.shape == lora.lora_B.shape and not hasattr(asym, "router")


CONFIGS = {
    "lora": AdapterConfig(r=4),
    "asymlora": AdapterConfig.preset("asymlora", r=4),
    "asymlora_module_topk": AdapterConfig(scheme="asymlora", r=4, num_experts=3, router="topk", top_k=2),
    "asymlora_tasks": AdapterConfig(scheme="asymlora", r=4, num_tasks=3, num_experts=2, task_names=["a", "b", "c"]),
    "moe_lora": AdapterConfig(scheme="moe_lora", r=4, num_experts=3),
    "mixlora": AdapterConfig(scheme="mixlora", r=2, num_experts=8),
}


def inject_with_nonzero_heads(model, config, std=0.1):
    """Inject and give every B a non-zero value (a fresh B = 0 would block gradient to A and routers); train mode."""
    inject_adapters(model, config)
    layers = [m for m in model.modules() if isinstance(m, AdapterLinear)]
    with torch.no_grad():
        for m in layers:
            m.lora_B.normal_(std=std)
    model.train()
    return layers


@pytest.mark.parametrize("name", list(CONFIGS))
def test_fresh_adapter_leaves_base_logits_unchanged(tiny, name):
    model, _ = tiny
    inputs = tiny_inputs(model)
    model.eval()
    with torch.no_grad():
        before = model(**inputs).logits
        inject_adapters(model, CONFIGS[name])
        with adapter_batch(model, task_ids=torch.tensor([0, 1]), token_mask=torch.ones_like(inputs["input_ids"])):
            after = model(**inputs).logits
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_task_batch_gives_zero_gradient_to_other_tasks_heads(tiny):
    model, _ = tiny
    layers = inject_with_nonzero_heads(model, CONFIGS["asymlora_tasks"])
    with adapter_batch(model, task_ids=torch.tensor([1, 1])):
        model(**tiny_inputs(model)).loss.backward()
    for m in layers:
        for t in range(3):
            head_grads = torch.stack([m.lora_B.grad[:, (t * 2 + e) * m.r:(t * 2 + e + 1) * m.r] for e in range(2)])
            if t == 1:
                assert head_grads.abs().sum() > 0
            else:
                assert torch.count_nonzero(head_grads) == 0
        assert m.lora_A.grad.abs().sum() > 0  # the shared A learns from every task


def test_mixlora_routers_learn_from_lm_loss(tiny):
    model, _ = tiny
    layers = inject_with_nonzero_heads(model, CONFIGS["mixlora"])
    inputs = tiny_inputs(model)
    with adapter_batch(model, token_mask=torch.ones_like(inputs["input_ids"])):
        model(**inputs).loss.backward()
    for m in layers:
        assert m.router_a.weight.grad.abs().sum() > 0
        assert m.router_b.weight.grad.abs().sum() > 0
        assert m.router_cfs.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("router,learns", [("topk", False), ("switch", True), ("dense", True)])
def test_a_top_1_router_learns_from_the_output_only_with_a_switch_gate(router, learns):
    """One expert kept: topk's gate, renormalised over the kept experts, is exactly 1 whatever the router says, so the
    output gives the router no gradient; switch's gate is the expert's full-softmax probability (Switch Transformer),
    which keeps it. Eval mode: no balance-loss statistic, the output's gradient only."""
    torch.manual_seed(0)
    base = nn.Linear(24, 20).requires_grad_(False)
    layer = AdapterLinear(base, "asymlora", r=4, alpha=8, num_experts=3, router=router, top_k=1,
                          state=RoutingState()).eval()
    with torch.no_grad():
        layer.lora_B.normal_()
    layer(torch.randn(3, 4, 24)).square().sum().backward()
    assert bool(layer.router.weight.grad.abs().sum() > 0) == learns
    assert layer.lora_A.grad.abs().sum() > 0  # the adapter itself learns under every gate


def test_mixlora_selects_r_factors_per_instance():
    layer = make_layer("mixlora", num_experts=8, r=3)
    layer.eval()
    x = torch.randn(2, 6, 24)
    layer.state.begin_batch(token_mask=torch.ones(2, 6))
    select = MixLoRA.selection(layer, x)
    assert select.shape == (2, 8, 8)
    assert [(s != 0).sum().item() for s in select] == [3, 3]
    assert ((select != 0).sum(-1) <= 1).all() and ((select != 0).sum(-2) <= 1).all()  # a_i pairs with one b_i


@pytest.mark.parametrize("scope", ["module", "mlp_block"])
@pytest.mark.parametrize("reentrant", [True, False])
def test_balance_loss_reaches_router_under_gradient_checkpointing(scope, reentrant):
    """Fresh heads (B = 0) give the router no LM gradient: any router gradient is the balance loss's."""
    from llava.model.tiny import build_tiny

    def router_grads(checkpointing, coef):
        model, _ = build_tiny(seed=0)
        cfg = AdapterConfig(scheme="asymlora", r=4, num_experts=3, router_scope=scope, dropout=0.0,
                            mixture_targets=["gate_proj", "up_proj", "down_proj"], balance_coef=coef)
        torch.manual_seed(123)  # same adapter init in every call
        inject_adapters(model, cfg)
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
            language_inputs_require_grad(model)
        model.train()
        inputs = tiny_inputs(model)
        state = routing_state(model)
        state.begin_batch(None, torch.ones_like(inputs["input_ids"]))
        state.aux_grad_scale = coef
        loss = model(**inputs).loss
        assert state.finish_forward() is not None
        loss.backward()
        return {n: p.grad.clone() if p.grad is not None else torch.zeros_like(p)
                for n, p in model.named_parameters() if "router" in n}

    reference = router_grads(False, 0.05)
    with_ckpt = router_grads(True, 0.05)
    without_coef = router_grads(True, 0.0)
    assert reference and all(g.abs().sum() > 0 for g in with_ckpt.values())
    for name in reference:
        torch.testing.assert_close(with_ckpt[name], reference[name], rtol=1e-5, atol=1e-8, msg=name)
        assert without_coef[name].abs().sum() == 0


@pytest.mark.parametrize("scheme", ["asymlora", "moe_lora"])
def test_block_routers_hold_nothing_after_a_checkpointed_step(scheme):
    """Non-reentrant checkpointing stops each layer's recomputation early, before a hook on the block's output
    would run: gates left on the router would keep every layer's recomputed graph alive through the backward
    (measured on the 7B shape: the paper preset needed 2x LoRA's memory at half the batch)."""
    from llava.adapters.routing import BlockRouter
    from llava.model.tiny import build_tiny

    model, _ = build_tiny(seed=0)
    inject_adapters(model, AdapterConfig(scheme=scheme, r=4, num_experts=3, router_scope="mlp_block", dropout=0.0,
                                         mixture_targets=["gate_proj", "up_proj", "down_proj"], balance_coef=0.05))
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    language_inputs_require_grad(model)
    model.train()
    routers = [m for m in model.modules() if isinstance(m, BlockRouter)]
    assert routers and all(r.consumers == 3 for r in routers)
    inputs = tiny_inputs(model)
    state = routing_state(model)
    state.begin_batch(None, torch.ones_like(inputs["input_ids"]))
    state.aux_grad_scale = 0.05
    loss = model(**inputs).loss
    state.finish_forward()
    loss.backward()
    assert all(r.current is None and r._aux is None for r in routers)
    assert all(r.weight.grad is not None and r.weight.grad.abs().sum() > 0 for r in routers)


def test_mixlora_decoding_keeps_the_prompts_selection():
    layer = make_layer("mixlora", num_experts=8, r=3)
    layer.eval()
    state = layer.state
    state.begin_batch(token_mask=torch.ones(2, 6))
    prompt_selection = MixLoRA.selection(layer, torch.randn(2, 6, 24))
    assert MixLoRA.selection(layer, torch.randn(2, 1, 24)) is prompt_selection  # one new token: reuse
    state.begin_batch()  # the next batch routes afresh
    assert MixLoRA.selection(layer, torch.randn(2, 1, 24)) is not prompt_selection


def _switch_value(probs, gates, mask):
    from llava.adapters.balance import BalanceLoss

    loss = BalanceLoss("switch")
    loss.record(0, probs, gates, mask)
    return loss.finish().item()


def test_switch_balance_loss_values():
    uniform_probs = torch.full((1, 6, 3), 1 / 3)
    spread = torch.eye(3)[[0, 1, 2, 0, 1, 2]].unsqueeze(0)
    assert _switch_value(uniform_probs, spread, None) == pytest.approx(1.0)  # perfectly balanced
    collapsed = torch.tensor([[1.0, 0.0, 0.0]]).expand(1, 6, 3)
    assert _switch_value(collapsed, collapsed, None) == pytest.approx(3.0)  # one expert takes all: E
    mask = torch.tensor([[True, True, True, False, False, False]])
    skewed = torch.cat([spread[:, :3], collapsed[:, 3:]], dim=1)
    assert _switch_value(torch.cat([uniform_probs[:, :3], collapsed[:, 3:]], 1), skewed, mask) == \
        pytest.approx(1.0)  # masked (padding) tokens do not count


def test_mixlora_reads_an_instance_from_its_prompt_in_training_as_at_inference():
    """In training the sample's reply is in the batch; at inference it is not. Routing on the reply's tokens too would
    pick factors from the answer the model is to predict, a selection inference can never reproduce."""
    layer = make_layer("mixlora", num_experts=8, r=3)
    state = layer.state
    torch.manual_seed(1)
    x = torch.randn(1, 6, 24)
    x[:, 4:] *= 50  # reply tokens far from the prompt's, so including them changes the mean
    labels = torch.tensor([[-100, -100, -100, -100, 11, 12]])
    state.begin_batch(token_mask=torch.ones(1, 6), labels=labels)
    assert state.instance_mask.tolist() == [[True] * 4 + [False] * 2]
    training = MixLoRA.selection(layer, x)
    state.begin_batch(token_mask=torch.ones(1, 4))  # inference: the prompt alone
    inference = MixLoRA.selection(layer, x[:, :4])
    torch.testing.assert_close(training, inference)
    state.begin_batch(token_mask=torch.ones(1, 6))  # without labels every attended token counts
    assert not torch.equal(MixLoRA.selection(layer, x), inference)


def test_a_prompt_router_gives_each_sample_one_gate_read_from_its_prompt():
    """router_input="prompt": every token of a sample gets the gate of its prompt's mean (the reply's tokens, present
    in training only, are left out, so training routes as inference does); decoding keeps the prompt's gates."""
    torch.manual_seed(0)
    layer = AdapterLinear(nn.Linear(24, 20), "asymlora", r=4, alpha=8, num_experts=3, state=RoutingState(),
                          router_input="prompt")
    state = layer.state
    x = torch.randn(2, 6, 24)
    x[:, 4:] *= 50  # reply tokens far from the prompt's
    labels = torch.tensor([[-100] * 4 + [11, 12]] * 2)
    state.begin_batch(token_mask=torch.ones(2, 6), labels=labels)
    training, _ = layer.router.route(x, state)
    assert training.shape == (2, 6, 3)
    assert torch.equal(training, training[:, :1].expand(2, 6, 3))  # one gate per sample
    assert not torch.allclose(training[0], training[1])  # ... and its own
    layer.eval()
    state.begin_batch(token_mask=torch.ones(2, 4))  # inference: the prompt alone
    prompt, _ = layer.router.route(x[:, :4], state)
    torch.testing.assert_close(prompt[:, 0], training[:, 0])
    step, _ = layer.router.route(torch.randn(2, 1, 24) * 50, state)  # one new token: the prompt's gates
    torch.testing.assert_close(step[:, 0], prompt[:, 0])
    state.begin_batch()  # the next batch routes afresh
    assert not torch.allclose(layer.router.route(torch.randn(2, 1, 24) * 50, state)[0][:, 0], prompt[:, 0])
    layer.train()
    with torch.no_grad():
        layer.lora_B.normal_()  # a fresh B = 0 blocks every gradient but B's
    layer(x).square().sum().backward()  # the output's loss reaches the router through the pooled input
    assert layer.router.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("router,top_k", [("dense", 1), ("switch", 1)])
def test_prompt_routing_equals_a_reference_computed_by_hand(router, top_k):
    """Fused prompt routing against the expert-by-expert loop fed gates computed here: softmax of the router on the
    mean of each sample's prompt tokens (Switch: the top expert kept at its probability), the same for every token.
    Outputs, every gradient (input, A, B heads, router; with the router z-loss on) and the statistics agree (hydra:
    the per-sample mean of the full softmax over counted tokens, here the pooled softmax itself; z: the squared
    logsumexp of each sample's one logit vector, averaged)."""
    layers = []
    for _ in range(2):
        torch.manual_seed(0)
        layer = AdapterLinear(nn.Linear(24, 20).requires_grad_(False), "asymlora", r=4, alpha=8, num_experts=3,
                              router=router, top_k=top_k, state=RoutingState(), router_bias=True)
        with torch.no_grad():
            layer.lora_B.normal_()
        layers.append(layer)
    fused, loop = layers
    prompt = torch.tensor([[True] * 4 + [False] * 2, [True] * 3 + [False] * 3])
    labels = torch.where(prompt, -100, 7)
    fused.state.begin_batch(token_mask=torch.ones(2, 6), labels=labels)
    fused.router.router_input = "prompt"
    x1 = torch.randn(2, 6, 24, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    fused.state.z_grad_scale = z_coef = 0.1
    y1 = fused(x1)
    fused.state.finish_forward()

    pooled = torch.stack([x2[b][prompt[b]].mean(0) for b in range(2)])  # [2, 24]
    logits = pooled @ loop.router.weight.t() + loop.router.bias
    z_loss = torch.logsumexp(logits, -1).square().mean()
    torch.testing.assert_close(fused.state.z_value, z_loss.detach())
    probs = torch.softmax(logits, -1)
    gates = probs if router == "dense" else probs * torch.nn.functional.one_hot(probs.argmax(-1), 3)
    y2 = loop.base(x2) + loop_delta(loop, x2, gates.unsqueeze(1).expand(2, 6, 3))
    torch.testing.assert_close(y1, y2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused.state.balance.prob_stats[0], probs.detach(), rtol=1e-5, atol=1e-6)
    g = torch.randn_like(y1)
    y1.backward(g)
    ((y2 * g).sum() + z_coef * z_loss).backward()
    g1, g2 = grads(fused, x1), grads(loop, x2)
    assert g1.keys() == g2.keys() and g1["router.weight"].abs().sum() > 0
    for name in g1:
        scale = max(1.0, g2[name].abs().max().item())
        torch.testing.assert_close(g1[name], g2[name], rtol=1e-5, atol=1e-6 * scale, msg=name)


def test_router_temperature_noise_and_zero_init():
    """Temperature divides the logits (checked by hand); noise perturbs the gates in training only; a zero-initialised
    router starts with every gate uniform and still learns."""
    from llava.adapters.routing import Router

    torch.manual_seed(0)
    router, x, state = Router(24, 3, bias=True), torch.randn(2, 5, 24), RoutingState()
    plain = torch.softmax(x @ router.weight.t() + router.bias, -1)
    router.configure(temperature=0.5)
    torch.testing.assert_close(router.route(x, state)[0], torch.softmax(torch.log(plain) * 2, -1))
    router.configure(noise=1.0)
    assert not torch.allclose(router.route(x, state)[0], router.route(x, state)[0])  # training: noisy
    router.eval()
    torch.testing.assert_close(router.route(x, state)[0], plain)  # inference: the plain gates
    router.train()
    router.configure(init="zero")
    router.noise = 0.0
    gates, _ = router.route(x, state)
    torch.testing.assert_close(gates, torch.full_like(gates, 1 / 3))
    (gates * torch.randn_like(gates)).sum().backward()
    assert router.weight.grad.abs().sum() > 0


def test_a_zero_router_that_nothing_breaks_the_symmetry_of_is_refused():
    """Zero router weights, zero B heads, a dense gate and nothing else: every head gets the same update and the
    router no gradient, for ever (the study's prompt_coef0_zero run); noise, a balance loss or top-k break the tie."""
    dead = dict(scheme="asymlora", num_experts=3, router_init="zero", balance_coef=0.0)
    with pytest.raises(ValueError, match="never learns"):
        AdapterConfig(**dead)
    AdapterConfig(**{**dead, "router_noise": 0.1})
    AdapterConfig(**{**dead, "balance_coef": 0.05})
    AdapterConfig(**{**dead, "router": "switch", "top_k": 1})
    torch.manual_seed(0)
    layer = AdapterLinear(nn.Linear(24, 20).requires_grad_(False), "asymlora", r=4, alpha=8, num_experts=3,
                          state=RoutingState())
    layer.router.configure(init="zero")
    x = torch.randn(2, 5, 24)
    for _ in range(3):  # three plain SGD steps on an output loss: the heads stay equal, the router does not move
        layer.zero_grad()
        layer(x).square().sum().backward()
        with torch.no_grad():
            for p in (layer.lora_A, layer.lora_B, layer.router.weight):
                p -= 0.1 * p.grad
    heads = [layer.head_B(e) for e in range(3)]
    assert heads[0].abs().sum() > 0 and all(torch.equal(heads[0], h) for h in heads[1:])
    assert layer.router.weight.abs().max() < 1e-4 * heads[0].abs().max()  # rounding only: the softmax of equals


def test_router_z_loss_is_refused_where_it_cannot_act():
    """A negative coefficient, or a scheme without token routers (lora, mixlora) given a z-loss, is a user's mistake."""
    AdapterConfig(scheme="moe_lora", num_experts=3, router_z_loss_coef=1e-3)
    for bad in (dict(scheme="lora", router_z_loss_coef=1e-3), dict(scheme="mixlora", num_experts=4, r=2,
                                                                   router_z_loss_coef=1e-3),
                dict(scheme="asymlora", num_experts=3, router_z_loss_coef=-1.0)):
        with pytest.raises(ValueError, match="router_z_loss_coef"):
            AdapterConfig(**bad)
