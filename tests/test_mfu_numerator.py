"""The GPU check's MFU numerator (bench/gpu/train_step.py's FLOP model) against torch's FlopCounterMode, which counts
every matmul a training forward + backward really runs, on the toy 7B-architecture model, every scheme.

Eager attention, so the attention matmuls are visible to the counter; the counter counts them whole, where the FLOP
model counts causal attention's useful half, so that half is added back before comparing. What stays uncounted by
the counter is not matmul work (biases, embeddings, norms in the frozen tower's parameter count), well inside the
tolerance."""

import os
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from llava.adapters import AdapterConfig, inject_adapters
from llava.adapters.attached import routing_state
from llava.train.supervised_logits import supervised_logits_only

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "bench"), os.path.join(ROOT, "bench", "gpu")]

from common import SCHEMES, adapter_config, build_model, image_batch, remove_adapters  # noqa: E402
from train_step import counts, model_flops  # noqa: E402

BATCH, SEQ = 2, 96
VARIANTS = {**{name: lambda name=name: adapter_config(name, True) for name in SCHEMES},
            "asymlora, prompt routers": lambda: AdapterConfig.preset("asymlora", "tiny", router_input="prompt")}


@pytest.fixture(scope="module")
def model():
    model = build_model(True, "cpu", torch.float32, attn="eager")
    model.config.text_config.use_cache = False
    return model


@pytest.mark.parametrize("name", list(VARIANTS))
def test_flop_model_counts_what_the_step_runs(model, name):
    config = VARIANTS[name]()
    inject_adapters(model, config)
    model.train()
    try:
        batch = image_batch(model.config, BATCH, SEQ, "cpu", torch.float32)
        labelled = int((batch["labels"][:, 1:] != -100).sum())
        state = routing_state(model)
        state.begin_batch(torch.arange(BATCH) % 3, batch["attention_mask"], batch["labels"])
        state.aux_grad_scale = config.balance_coef
        with FlopCounterMode(display=False) as counter:
            loss = model(**supervised_logits_only(batch)).loss
            state.finish_forward()
            loss.backward()
        predicted = model_flops(model, counts(model), BATCH, SEQ, labelled)
    finally:
        remove_adapters(model)
    text = model.config.text_config
    masked_half = 6 * SEQ * text.hidden_size * text.num_hidden_layers * BATCH * SEQ  # causal: counted whole above
    counted = counter.get_total_flops()
    assert counted == pytest.approx(predicted + masked_half, rel=0.005), (counted, predicted + masked_half)
