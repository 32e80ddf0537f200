"""The paper's MoE-LoRA baseline: LoRAs fine-tuned separately, one per instruction dataset, combined as the experts
of one mixture ("we fine-tune separate LoRA modules on different instruction datasets and treat each LoRA module as
an expert, dynamically combining them via MoE", Table 1's "Multiple LoRA (MoE)", Table 4's MoE-LoRA).

Expert e's A and B become the e-th row block of the moe_lora layer's Acat and column block of its Bcat, so with the
router forced to expert e every adapted layer adds exactly that LoRA's update. Every adapted linear routes (the
experts differ in attention as well as in the MLP), on its own input, through a fresh dense router with a bias; the
routers are then trained on the shuffled union of the tasks' data with the experts frozen (`--init_adapters DIR
--train_routers_only True`). The projector is the mean of the experts' projectors (each run tuned its own).

    python -m llava.commands.combine_experts --experts runs/vqa,runs/gen --out runs/moe-combined
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

import torch
from safetensors.torch import load_file

from llava.adapters.config import AdapterConfig
from llava.adapters.io import PROJECTOR_PREFIX, WEIGHTS_NAME, atomic_save_file, weights_path
from llava.adapters.routing import Router
from llava.checkpoint import BASE_NAME, Base
from llava.console import progress_bars_only_on_a_terminal


def _expert(directory: str) -> tuple[AdapterConfig, dict[str, torch.Tensor], Base]:
    config = AdapterConfig.load(directory)
    if not config.spec.plain:
        raise ValueError(f"{directory}: an expert must be a plain LoRA checkpoint, this one is {config.scheme}")
    weights = weights_path(directory)
    for name, path in ((WEIGHTS_NAME, weights), (BASE_NAME, os.path.join(directory, BASE_NAME))):
        if path is None or not os.path.exists(path):
            raise FileNotFoundError(f"{directory}: no {name} (not a finished training run)")
    return config, load_file(weights), Base.read(directory)


def combine(expert_dirs: list[str], out: str, balance_coef: float = 0.05, seed: int = 0) -> AdapterConfig:
    """Write a moe_lora checkpoint to `out` whose experts are the LoRAs in `expert_dirs` (in that order)."""
    if len(expert_dirs) < 2:
        raise ValueError(f"combining needs at least two expert LoRAs, got {len(expert_dirs)}")
    experts = [_expert(d) for d in expert_dirs]
    first, _, base = experts[0]
    same = ("r", "alpha", "dropout", "targets", "adapter_dtype")
    for directory, (config, _, other_base) in zip(expert_dirs[1:], experts[1:], strict=True):
        differs = [k for k in same if getattr(config, k) != getattr(first, k)]
        if differs:
            raise ValueError(f"{directory}: {differs} differ from {expert_dirs[0]}'s; experts must share rank, "
                             "scale and targets")
        for key in ("model_name_or_path", "vision_tower", "template", "image_aspect_ratio", "bits", "model_seed"):
            if getattr(other_base, key) != getattr(base, key):
                raise ValueError(f"{directory} was trained on {key}={getattr(other_base, key)!r}, {expert_dirs[0]} "
                                 f"on {getattr(base, key)!r}: experts must share the base model")
    n = len(experts)
    config = AdapterConfig(scheme="moe_lora", r=first.r, alpha=first.alpha, dropout=first.dropout, num_experts=n,
                           router="dense", router_scope="module", targets=list(first.targets), mixture_targets=None,
                           balance_coef=balance_coef, balance_loss="hydra", router_bias=True,
                           adapter_dtype=first.adapter_dtype)
    weights = [w for _, w, _ in experts]
    tensors: dict[str, torch.Tensor] = {}
    with torch.random.fork_rng(devices=[]):  # the routers' init is seeded without touching the caller's RNG
        torch.manual_seed(seed)
        for key in weights[0]:
            if key.startswith(PROJECTOR_PREFIX):
                tensors[key] = torch.stack([w[key].float() for w in weights]).mean(0).to(weights[0][key].dtype)
            elif key.endswith(".lora_A"):
                tensors[key] = torch.cat([w[key] for w in weights], dim=0)  # expert-major rows: [E r, d_in]
                router = Router(weights[0][key].shape[1], n, bias=True, dtype=weights[0][key].dtype)
                layer = key[: -len(".lora_A")]
                tensors[f"{layer}.router.weight"] = router.weight.detach()
                tensors[f"{layer}.router.bias"] = router.bias.detach()
            elif key.endswith(".lora_B"):
                tensors[key] = torch.cat([w[key] for w in weights], dim=1)  # head-major columns: [d_out, E r]
            else:
                raise ValueError(f"{expert_dirs[0]}: unexpected tensor {key} in a LoRA checkpoint")
    os.makedirs(out, exist_ok=True)
    atomic_save_file(tensors, os.path.join(out, WEIGHTS_NAME))
    config.save(out)
    replace(base, task_names=(), combined_from=tuple(os.path.abspath(d) for d in expert_dirs)).save(out)
    return config


def main(argv=None) -> None:
    progress_bars_only_on_a_terminal()  # a log file gets no carriage-return floods
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experts", required=True, help="comma-separated LoRA checkpoint directories, one per task")
    ap.add_argument("--out", required=True, help="where the combined moe_lora checkpoint goes")
    ap.add_argument("--balance-coef", type=float, default=0.05, help="balance loss for the router training")
    ap.add_argument("--seed", type=int, default=0, help="seed of the fresh routers")
    args = ap.parse_args(argv)
    try:
        config = combine([d for d in args.experts.split(",") if d], args.out, args.balance_coef, args.seed)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from e
    print(f"combined {config.num_experts} LoRA experts into {args.out} (moe_lora, r={config.r}, every target routed)")


if __name__ == "__main__":
    main()
