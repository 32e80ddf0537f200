"""Experiment tracking: tensorboard and wandb (offline) receive the losses, learning rates and per-layer router health."""

import glob
import math
import struct
import time

import pytest
import torch
from transformers import TrainerCallback

from llava.train.router_health import router_parameters_by_layer
from llava.train.train import train

ROUTED = ["--adapter_scheme", "asymlora", "--num_experts", "3", "--router_scope", "mlp_block",
          "--mixture_targets", "gate_proj,up_proj,down_proj", "--balance_coef", "0.05", "--router_bias", "True"]


def run(data, out, report_to, extra=(), callbacks=None):
    spec, folder = data
    return train(["--model_name_or_path", "tiny", "--data_path", spec, "--image_folder", folder,
                  "--output_dir", str(out), "--lora_enable", "True", "--lora_r", "4", "--lora_alpha", "8",
                  "--lora_dropout", "0.0", "--per_device_train_batch_size", "4", "--learning_rate", "1e-2", "--mm_projector_lr", "1e-3",
                  "--max_steps", "4", "--logging_steps", "2", "--save_strategy", "no", "--use_cpu", "True",
                  "--disable_tqdm", "True", "--report_to", report_to, "--max_grad_norm", "1e9", *ROUTED, *extra],
                 callbacks=callbacks)


class RouterGrads(TrainerCallback):
    """The reference: the router gradients the optimizer is about to apply, read from `.grad` by transformers'
    own pre-optimizer-step event, and the router weights before training."""

    def __init__(self):
        self.norms, self.start = {}, {}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.layers = router_parameters_by_layer(model)
        self.start = {n: p.detach().float().clone() for group in self.layers.values() for n, p in group}

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.norms[state.global_step + 1] = {
            layer: math.sqrt(sum(float(p.grad.float().pow(2).sum()) for _, p in group if p.grad is not None))
            for layer, group in self.layers.items()}


def tensorboard_scalars(out):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = glob.glob(str(out / "runs" / "**" / "events.out.tfevents.*"), recursive=True)
    assert len(files) == 1, files
    events = EventAccumulator(files[0])
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def test_tensorboard_gets_losses_rates_and_router_health_per_layer(tmp_path, small_data):
    reference = RouterGrads()
    trainer = run(small_data, tmp_path / "out", "tensorboard", callbacks=[reference])
    scalars = tensorboard_scalars(tmp_path / "out")
    for tag in ["loss", "lm_loss", "balance_loss", "learning_rate", "projector_learning_rate", "grad_norm"]:
        assert set(scalars[f"train/{tag}"]) == {2, 4}, tag
    layers = sorted(reference.layers)
    assert layers == list(range(trainer.model.config.text_config.num_hidden_layers))  # every routed layer
    model = trainer.model
    for layer in layers:
        key = f"train/router_health/layer{layer}/"
        loads = [scalars[f"{key}load/expert{e}"][4] for e in range(3)]
        assert abs(sum(loads) - 1) < 1e-4 and min(loads) > 0
        assert all(0 < scalars[f"{key}gate_entropy"][s] <= 1 for s in (2, 4))
        # the gradient the optimizer applied at the logged steps (pre-clipping; clipping is off here)
        for step in (2, 4):
            assert scalars[f"{key}grad_norm"][step] == pytest.approx(reference.norms[step][layer], rel=1e-3)
        # relative change of the layer's router weights from the start, against the final weights
        group = dict(model.named_parameters())
        moved = sum(float((group[n].detach().float() - w0).pow(2).sum()) for n, w0 in reference.start.items()
                    if f".layers.{layer}." in n)
        size = sum(float(w0.pow(2).sum()) for n, w0 in reference.start.items() if f".layers.{layer}." in n)
        assert scalars[f"{key}weight_change"][4] == pytest.approx(math.sqrt(moved / size), rel=1e-3)
        assert scalars[f"{key}weight_change"][4] > 0
    mi = []
    for task in ("shape", "color", "yesno"):
        assert sum(scalars[f"train/router_health/load/{task}/expert{e}"][4] for e in range(3)) == pytest.approx(1, abs=1e-4)
        for layer in layers:  # the same per layer
            shares = [scalars[f"train/router_health/layer{layer}/load/{task}/expert{e}"][4] for e in range(3)]
            assert sum(shares) == pytest.approx(1, abs=1e-4)
    for layer in layers:  # task-expert mutual information of the top experts, per layer and over the layers
        mi.append(scalars[f"train/router_health/layer{layer}/task_mi_bits"][4])
        assert 0 <= mi[-1] <= math.log2(3)
    assert scalars["train/router_health/task_mi_bits/mean"][4] == pytest.approx(sum(mi) / len(mi), abs=1e-5)
    assert scalars["train/router_health/task_mi_bits/max"][4] == pytest.approx(max(mi), abs=1e-5)
    assert (tmp_path / "out" / "plots" / "router_health.png").stat().st_size > 10_000  # the picture, from the events
    # the trackers get them; the log history (trainer_state.json) and the console do not
    assert not any(k.startswith("router_health/") for h in trainer.state.log_history for k in h)


def test_no_tracker_no_router_health(tmp_path, small_data):
    trainer = run(small_data, tmp_path / "out", "none")
    assert trainer.router_health is None


def wandb_history(run_dir):
    """Keys and values of an offline run's history records, and the count of each record type: the .wandb file is
    LevelDB's log format (32 KiB blocks of checksummed chunks) holding wandb's protobuf Records."""
    from wandb.proto import wandb_internal_pb2

    data = open(glob.glob(str(run_dir / "*.wandb"))[0], "rb").read()
    assert data[:4] == b":W&B"
    pos, chunks, history, kinds = 7, [], {}, {}
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:  # zero padding to the block's end
            pos += left
            continue
        if pos + 7 + length > len(data):  # the record being written as we read: the file ends inside it
            break
        chunks.append(data[pos + 7:pos + 7 + length])
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(chunks))
            chunks = []
            kind_name = record.WhichOneof("record_type")
            kinds[kind_name] = kinds.get(kind_name, 0) + 1
            if kind_name == "history":
                for item in record.history.item:
                    history.setdefault(item.key or "/".join(item.nested_key), []).append(float(item.value_json))
    return history, kinds


def finished_wandb_history(run_dir, wait_s=60.0):
    """The history once the transaction log holds its exit record (wandb's service may still be writing after
    `wandb.finish()` returns on a loaded machine)."""
    from google.protobuf.message import DecodeError

    deadline = time.monotonic() + wait_s
    while True:
        try:
            history, kinds = wandb_history(run_dir)
        except DecodeError:  # a block read half-written; a finished file that does not parse fails at the deadline
            if time.monotonic() > deadline:
                raise
            history, kinds = {}, {}
        if kinds.get("exit") or time.monotonic() > deadline:
            return history, kinds
        time.sleep(0.5)


def test_wandb_offline_run_holds_the_same_router_health(tmp_path, small_data, monkeypatch):
    wandb = pytest.importorskip("wandb", reason="wandb is in the dev extra")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    trainer = run(small_data, tmp_path / "out", "wandb")
    wandb.finish()
    runs = glob.glob(str(tmp_path / "wandb" / "offline-run-*"))
    assert len(runs) == 1
    history, kinds = finished_wandb_history(type(tmp_path)(runs[0]))
    assert kinds.get("exit") == 1, kinds
    layers = trainer.model.config.text_config.num_hidden_layers
    for layer in range(layers):
        for name in ["gate_entropy", "weight_change", "grad_norm", "load/expert0"]:
            key = f"train/router_health/layer{layer}/{name}"
            assert key in history, (key, kinds, sorted(history))
            values = history[key]
            assert len(values) == 2 and all(math.isfinite(v) for v in values), name
    assert len(history["train/loss"]) == 2 and len(history["train/balance_loss"]) == 2
    assert torch.tensor(history["train/router_health/layer0/weight_change"]).gt(0).all()
