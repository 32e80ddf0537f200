"""A checkpoint: what it holds, its layout, saving, loading, listing and resuming, in one place.

Every checkpoint directory (each intermediate `checkpoint-N/` and the final output) holds:
- `llava_base.json`: what the frozen base is (`Base`), enough to rebuild it; the base weights are not copied;
- `llava_adapters.json` + `llava_adapters.safetensors`: adapters, routers, projector (adapters/io.py); a projector-only
  run (stage 1) writes `mm_projector.safetensors` in LLaVA's key layout instead;
- `config.json` (the Llava model config), the tokenizer and the image processor; in an intermediate one, what
  resumes it: trainer_state.json, optimizer and scheduler state, RNG states.
A loaded model carries its `Checkpoint` (`checkpoint_of`): templates, image handling, task names follow its training.
"""

from __future__ import annotations

import glob
import json
import os
import pickle
from dataclasses import asdict, dataclass, field

import torch
from transformers.trainer_pt_utils import safe_globals

from llava.adapters.attached import adapter_config
from llava.adapters.config import AdapterConfig, config_path
from llava.adapters.inject import cast_adapters
from llava.adapters.io import (
    LEGACY_WEIGHTS_NAME,
    PROJECTOR_PREFIX,
    WEIGHTS_NAME,
    adapter_state_dict,
    atomic_save_file,
    load_adapters,
    save_adapters,
)
from llava.model.anatomy import projector
from llava.model.builder import load_model, load_projector, resolve_dtype

BASE_NAME = "llava_base.json"
PROJECTOR_FILE = "mm_projector.safetensors"
OPTIMIZER_STATE = "optimizer_state.safetensors"  # under DeepSpeed: the whole optimizer state (train/optimizer_state.py)
TRAINER_STATE = "trainer_state.json"
ATTRIBUTE = "llava_checkpoint"


@dataclass(frozen=True)
class Base:
    """What a checkpoint's frozen base is: where its weights come from and how its inputs are laid out."""

    model_name_or_path: str
    vision_tower: str | None = None
    pretrain_mm_mlp_adapter: str | None = None
    model_seed: int = 0
    template: str = "v1"  # the conversation template: LLaVA's --version in training, --conv-mode in evaluation
    image_aspect_ratio: str = "pad"
    task_names: tuple[str, ...] = field(default_factory=tuple)
    bits: int = 16
    combined_from: tuple[str, ...] = field(default_factory=tuple)  # the LoRA experts of a combined MoE-LoRA

    def save(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        record = asdict(self)
        record["version"] = record.pop("template")  # the file's key since the first version
        record["task_names"] = list(self.task_names)
        record["combined_from"] = list(self.combined_from)
        if not self.combined_from:
            del record["combined_from"]  # a base without experts keeps the keys every version wrote
        with open(os.path.join(directory, BASE_NAME), "w") as f:
            json.dump(record, f, indent=2)

    @classmethod
    def read(cls, directory: str) -> Base:
        path = os.path.join(directory, BASE_NAME)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{directory} has no {BASE_NAME}: not a llava-asymlora checkpoint")
        with open(path) as f:
            record = json.load(f)
        if not isinstance(record, dict) or "model_name_or_path" not in record:
            raise ValueError(f"{path}: not a base record (no model_name_or_path)")
        record["template"] = record.pop("version", cls.template)
        unknown = set(record) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
        record["task_names"] = tuple(record.get("task_names") or ())
        record["combined_from"] = tuple(record.get("combined_from") or ())
        return cls(**record)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint directory as read: its base (None for a merged or llava-hf model) and adapters (None: none)."""

    directory: str
    base: Base | None
    adapters: AdapterConfig | None

    @classmethod
    def read(cls, directory: str) -> Checkpoint:
        base = Base.read(directory) if os.path.exists(os.path.join(directory, BASE_NAME)) else None
        adapters = AdapterConfig.load(directory) if config_path(directory) is not None else None
        return cls(directory, base, adapters)


def checkpoint_of(model) -> Checkpoint | None:
    """The checkpoint a model was loaded from (load_checkpoint_model), or None."""
    return getattr(model, ATTRIBUTE, None)  # getattr: a DeepSpeed engine forwards it to its module


def base_of(model) -> Base | None:
    """The base record of the checkpoint a model was loaded from, or None (a merged or llava-hf model, a preset)."""
    return found.base if (found := checkpoint_of(model)) is not None else None


def template_of(model, default: str = "vicuna_v1") -> str:
    return base.template if (base := base_of(model)) is not None else default


def image_aspect_ratio_of(model, default: str = "pad") -> str:
    return base.image_aspect_ratio if (base := base_of(model)) is not None else default


def save_checkpoint(model, directory: str, base: Base, tokenizer=None, image_processor=None,
                    state_dict: dict | None = None) -> None:
    """Everything but the frozen base and the resume state. `state_dict`: tensors already gathered (ZeRO-3)."""
    os.makedirs(directory, exist_ok=True)
    if adapter_config(model) is not None:
        names = adapter_state_dict(model).keys()
        tensors = None if state_dict is None else {k: state_dict[k] for k in names if k in state_dict}
        save_adapters(model, directory, state_dict=tensors)
    elif projector(model) is not None:  # stage 1: projector only, in LLaVA's key layout
        source = state_dict if state_dict is not None else dict(model.named_parameters())
        tensors = {k.replace(PROJECTOR_PREFIX + "linear_1.", "model.mm_projector.0.")
                   .replace(PROJECTOR_PREFIX + "linear_2.", "model.mm_projector.2."): v
                   for k, v in source.items() if k.startswith(PROJECTOR_PREFIX)}
        atomic_save_file(tensors, os.path.join(directory, PROJECTOR_FILE))
    model.config.save_pretrained(directory)
    for part in (tokenizer, image_processor):
        if part is not None:
            part.save_pretrained(directory)
    base.save(directory)


def load_checkpoint_model(directory: str, dtype="fp32", attn_implementation: str | None = None,
                          load_weights: bool = True, bits: int | None = None):
    """Rebuild base model + adapters + projector from a checkpoint. Returns (model, tokenizer, image_processor).

    A merged or plain llava-hf directory (no llava_base.json) loads as a model without adapters. `bits` (4/8)
    overrides the precision the base was trained in (e.g. a 4-bit chat with a model trained in bf16).
    """
    if not os.path.exists(os.path.join(directory, BASE_NAME)):
        return load_model(directory, dtype=dtype, attn_implementation=attn_implementation, bits=bits or 16)
    found = Checkpoint.read(directory)
    base = found.base
    model, tokenizer, image_processor = load_model(
        base.model_name_or_path, vision_tower=base.vision_tower, pretrain_mm_mlp_adapter=base.pretrain_mm_mlp_adapter,
        dtype=dtype, attn_implementation=attn_implementation, seed=base.model_seed, bits=bits or base.bits)
    if load_weights and found.adapters is not None:
        load_adapters(model, directory)
        compute = resolve_dtype(dtype)
        if compute != torch.float32:  # inference in bf16/fp16: adapters cast once here, not per layer and step
            cast_adapters(model, compute)
    setattr(model, ATTRIBUTE, found)
    return model, tokenizer, image_processor


def load_trained_weights(model, directory: str) -> None:
    """Resume: the checkpoint's adapters (and projector), or a projector-only run's projector, into `model`."""
    if adapter_config(model) is not None:
        load_adapters(model, directory)
    elif os.path.exists(os.path.join(directory, PROJECTOR_FILE)):
        load_projector(model, os.path.join(directory, PROJECTOR_FILE))


# --- listing and resuming ---------------------------------------------------------------------------------------
def checkpoints_newest_first(output_dir: str) -> list[str]:
    """OUTPUT/checkpoint-N directories, highest N first."""
    def step(path: str) -> int:
        tail = path.rsplit("-", 1)[-1]
        return int(tail) if tail.isdigit() else -1
    return sorted(glob.glob(os.path.join(output_dir, "checkpoint-*")), key=step, reverse=True)


def trained_weight_files(directory: str) -> list[str]:
    """The trained-weight files `directory` holds (under this version's names or an earlier one's)."""
    return [name for name in (WEIGHTS_NAME, LEGACY_WEIGHTS_NAME, PROJECTOR_FILE)
            if os.path.exists(os.path.join(directory, name))]


def checkpoint_problem(path: str) -> str | None:
    """Why `path` is not a complete checkpoint, or None. transformers writes a checkpoint in place and its
    trainer_state.json last, so a save killed part-way leaves it without one (or with a cut one)."""
    state = os.path.join(path, TRAINER_STATE)
    if not os.path.exists(state):
        return f"no {TRAINER_STATE} (the save did not finish)"
    try:
        with open(state) as f:
            json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        return f"{TRAINER_STATE} is unreadable ({err})"
    if not trained_weight_files(path):
        return "no adapter or projector weights"
    if not (os.path.exists(os.path.join(path, "optimizer.pt")) or os.path.exists(os.path.join(path, OPTIMIZER_STATE))
            or glob.glob(os.path.join(path, "global_step*"))):
        return "no optimizer state"
    for name in ["optimizer.pt", "scheduler.pt", *sorted(os.path.basename(p) for p in
                                                        glob.glob(os.path.join(path, "rng_state*.pth")))]:
        refusal = _tensors_only_refusal(os.path.join(path, name))
        if refusal:
            return refusal
    return None


def _tensors_only_refusal(path: str) -> str | None:
    """Resuming unpickles these files; check first (tensors-only, memory-mapped, no code runs) and name the file."""
    if not os.path.exists(path):
        return None
    try:
        with safe_globals():  # the numpy RNG types transformers itself allows when it reloads rng_state.pth
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        return f"refused to load {path}: not a tensors-only checkpoint file ({type(err).__name__})"
    return None


def newest_complete(output_dir: str, log) -> str | None:
    """The newest checkpoint-N complete here and on every other process's disk (they differ with node-local
    saving, where a node killed mid-save holds one checkpoint fewer): every rank must resume from the same step."""
    complete = []
    for path in checkpoints_newest_first(output_dir):
        problem = checkpoint_problem(path)
        if problem is None:
            complete.append(int(path.rsplit("-", 1)[-1]))
        else:
            log(f"skipping {path}: {problem}")
    steps = set(complete)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        everyone: list = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(everyone, sorted(steps))
        for other in everyone:
            steps &= set(other)
        for step in sorted(set(complete) - steps, reverse=True):
            log(f"skipping checkpoint-{step}: not complete on every node")
    return os.path.join(output_dir, f"checkpoint-{max(steps)}") if steps else None


def newest_checkpoint_note(output_dir: str) -> str:
    """One sentence for a stopped run: where it can resume from."""
    found = checkpoints_newest_first(output_dir)
    if not found:
        return "No checkpoint was written yet."
    return f"The newest checkpoint, {found[0]}, holds finite weights (--resume_from_checkpoint {found[0]})."
