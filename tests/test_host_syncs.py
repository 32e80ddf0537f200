"""No host-device sync inside the adapter stack: a training forward + backward of the tiny preset with any scheme,
padded or padding-free, reads back to the host exactly as often as the same step without adapters (transformers' own
image-token check).
A sync is counted at the ops that wait for the device: `_local_scalar_dense` (.item(), bool(), F.one_hot's range
check), nonzero, masked_select and boolean indexing. Beyond the model, the trainer's non-finite guard reads the
device once per optimizer step."""

import collections

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from llava.adapters import AdapterConfig, inject_adapters
from llava.adapters.attached import routing_state
from llava.adapters.packed import PackedSamples
from llava.model.tiny import build_tiny

SYNCING = {"aten._local_scalar_dense.default", "aten.nonzero.default", "aten.masked_select.default",
           "aten.is_nonzero.default", "aten.equal.default", "aten._unique2.default"}


class SyncCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        boolean_index = name == "aten.index.Tensor" and any(
            getattr(i, "dtype", None) == torch.bool for i in (args[1] or []) if i is not None)
        if name in SYNCING or boolean_index:
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))


SCHEMES = {
    "lora": dict(scheme="lora"),
    "asymlora paper preset": dict(scheme="asymlora", num_experts=3, router_scope="mlp_block", router_bias=True,
                                  mixture_targets=["gate_proj", "up_proj", "down_proj"], balance_coef=0.05),
    "asymlora task heads": dict(scheme="asymlora", num_tasks=3),
    "asymlora task x expert": dict(scheme="asymlora", num_tasks=3, num_experts=2, balance_coef=0.05),
    "moe_lora top-2": dict(scheme="moe_lora", num_experts=3, router="topk", top_k=2, balance_coef=0.05),
    "mixlora": dict(scheme="mixlora", num_experts=8, r=2),
}


def training_step_syncs(settings: dict | None, packed: bool = False) -> collections.Counter:
    model, _ = build_tiny(seed=0)
    if settings is not None:
        inject_adapters(model, AdapterConfig(**{"r": 4, **settings}))
        routing_state(model).start_load_tracking(3, max(1, settings.get("num_experts", 1)))
    else:
        model.model.multi_modal_projector.requires_grad_(True)
    model.train()
    n = model.config.image_seq_length
    ids = torch.tensor([[1] + [model.config.image_token_index] * n + [60, 70, 80, 90]] * 2)
    labels = ids.clone()
    labels[:, :n + 2] = -100
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    mask, layout = torch.ones_like(ids), {"attention_mask": torch.ones_like(ids)}
    if packed:  # the two samples end to end in one row (--padding_free)
        ids, labels, mask = ids.reshape(1, -1), labels.reshape(1, -1), None
        layout = {"position_ids": torch.arange(ids.shape[1] // 2).repeat(2)[None]}
    with SyncCounter() as counter:
        if settings is not None:
            state = routing_state(model)
            samples = PackedSamples.from_position_ids(layout["position_ids"], 2) if packed else None
            state.begin_batch(torch.tensor([0, 2]), mask, labels, samples)
            state.aux_grad_scale = 0.05
        loss = model(input_ids=ids, pixel_values=pixels, labels=labels, use_cache=False, **layout).loss
        if settings is not None:
            state.finish_forward()
        loss.backward()
    return counter.counts


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "padding-free"])
@pytest.mark.parametrize("name", list(SCHEMES))
def test_adapters_add_no_host_sync_to_a_training_step(name, packed):
    base = training_step_syncs(None, packed)
    assert training_step_syncs(SCHEMES[name], packed) == base


def test_the_non_finite_guard_reads_the_device_once_per_optimizer_step(tmp_path, small_data, monkeypatch, capsys):
    """Counted around each micro-step of the tiny preset's training (asymlora task x expert, 2 micro-steps of
    accumulation, no logging step): the guard's flags cost no read on the first micro-step and exactly one (after
    its one all-reduce on several processes) on the micro-step after which the optimizer steps. The rest are the
    model's own reads for its inputs (transformers' image-token and padding checks, the supervised positions)."""
    from llava.train.train import train
    from llava.train.trainer import LlavaTrainer

    micro_steps, guard_calls = [], []
    step, stop = LlavaTrainer.training_step, LlavaTrainer._stop_if_flagged

    def counted_step(self, model, inputs, num_items_in_batch=None):
        guard_calls.append(collections.Counter())
        with SyncCounter() as counter:
            loss = step(self, model, inputs, num_items_in_batch)
        micro_steps.append((self.accelerator.sync_gradients, counter.counts, guard_calls[-1]))
        return loss

    def counted_stop(self, grad_bad=None):
        with SyncCounter() as counter:
            stop(self, grad_bad)
        guard_calls[-1] += counter.counts + collections.Counter({"calls": 1})

    monkeypatch.setattr(LlavaTrainer, "training_step", counted_step)
    monkeypatch.setattr(LlavaTrainer, "_stop_if_flagged", counted_stop)
    spec, folder = small_data
    train(["--model_name_or_path", "tiny", "--data_path", spec, "--image_folder", folder, "--output_dir",
           str(tmp_path / "run"), "--lora_enable", "True", "--adapter_scheme", "asymlora", "--num_experts", "2",
           "--balance_coef", "0.05", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "2",
           "--max_steps", "3", "--logging_steps", "100", "--save_strategy", "no", "--report_to", "none",
           "--use_cpu", "True", "--disable_tqdm", "True"])
    assert [boundary for boundary, _, _ in micro_steps] == [False, True] * 3
    with capsys.disabled():
        print("\nsyncs per micro-step (first, last of each optimizer step):",
              [sum(counts.values()) for _, counts, _ in micro_steps])
    for boundary, counts, guard in micro_steps:
        assert guard == (collections.Counter({"calls": 1, "aten._local_scalar_dense.default": 1}) if boundary
                         else collections.Counter())
        assert counts["aten._local_scalar_dense.default"] >= guard["aten._local_scalar_dense.default"]
