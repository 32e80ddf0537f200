"""Convert a checkpoint of the AsymLoRA authors' MLLM-HydraLoRA code into ours, so their trained models run
through our evaluation suite.

CLI: python -m llava.commands.convert_hydralora --checkpoint DIR --out DIR [--model-base PATH] [--vision-tower PATH]

Their layout (LLaVA's LoRA saving: PEFT `adapter_model.*` + `non_lora_trainables.bin`, keys under
`base_model.model.`): per MLP block `shared_lora_A_{gate,up,down}` (r x d_in), `moe_{gate,up,down}.{i}.lora_B`
(d_out x r, expert i), `router.{weight,bias}` (an nn.Linear on the block input), the frozen `original_module.*`;
PEFT LoRA on attention (`self_attn.{q,k,v,o}_proj.lora_{A,B}.weight`); the projector `mm_projector.{0,2}`. Older
copies spell `shared_LoRA_A_*` / `LoRA_B`. Their forward is ours for the paper preset: dense softmax gates from
the block input, shared A, per-expert B, scale alpha / r - so the conversion is a renaming plus stacking the B heads.
"""

from __future__ import annotations

import argparse
import glob
import os
import re

import torch

from llava.adapters.config import ATTENTION, MLP, AdapterConfig
from llava.adapters.io import WEIGHTS_NAME, atomic_save_file
from llava.checkpoint import Base
from llava.console import progress_bars_only_on_a_terminal

PROJ = {"0": "linear_1", "2": "linear_2"}


def _read(path: str) -> dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def read_hydralora(directory: str) -> dict[str, torch.Tensor]:
    files = [f for pattern in ("adapter_model.safetensors", "adapter_model.bin", "non_lora_trainables.bin")
             for f in glob.glob(os.path.join(directory, pattern))]
    if not files:
        raise FileNotFoundError(f"{directory}: no adapter_model.{{safetensors,bin}} or non_lora_trainables.bin")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        for key, value in _read(f).items():
            while key.startswith("base_model.model."):
                key = key[len("base_model.model."):]
            state[key.replace(".default.", ".")] = value
    return state


def convert(state: dict[str, torch.Tensor], alpha: float) -> tuple[dict[str, torch.Tensor], AdapterConfig]:
    out: dict[str, torch.Tensor] = {}
    heads: dict[tuple[str, str], dict[int, torch.Tensor]] = {}
    rank = None
    for key, value in state.items():
        low = key.lower()
        m = re.fullmatch(r"model\.layers\.(\d+)\.mlp\.shared_lora_a_(gate|up|down)", low)
        if m:
            out[f"model.language_model.layers.{m[1]}.mlp.{m[2]}_proj.lora_A"] = value
            rank = value.shape[0]
            continue
        m = re.fullmatch(r"model\.layers\.(\d+)\.mlp\.moe_(gate|up|down)\.(\d+)\.lora_(a|b)", low)
        if m:
            if m[4] == "b":
                heads.setdefault((m[1], m[2]), {})[int(m[3])] = value
            continue  # lora_A of an expert is the shared A, stored again
        m = re.fullmatch(r"model\.layers\.(\d+)\.mlp\.router\.(weight|bias)", low)
        if m:
            out[f"model.language_model.layers.{m[1]}.mlp.adapter_router.{m[2]}"] = value
            continue
        m = re.fullmatch(r"model\.layers\.(\d+)\.self_attn\.([qkvo])_proj\.lora_(a|b)\.weight", low)
        if m:
            out[f"model.language_model.layers.{m[1]}.self_attn.{m[2]}_proj.lora_{m[3].upper()}"] = value
            continue
        m = re.fullmatch(r"model\.mm_projector\.([02])\.(weight|bias)", low)
        if m:
            out[f"model.multi_modal_projector.{PROJ[m[1]]}.{m[2]}"] = value
            continue
        if ".original_module." in low or "rotary_emb" in low:
            continue  # the frozen base
        raise KeyError(f"unexpected key {key!r} in a MLLM-HydraLoRA checkpoint")
    if not heads or rank is None:
        raise ValueError("no shared_lora_A_* / moe_*.i.lora_B tensors: not a MLLM-HydraLoRA checkpoint")
    experts = {len(v) for v in heads.values()}
    if len(experts) != 1:
        raise ValueError(f"MLP blocks disagree on the number of experts: {sorted(experts)}")
    num_experts = experts.pop()
    for (layer, proj), by_index in heads.items():
        out[f"model.language_model.layers.{layer}.mlp.{proj}_proj.lora_B"] = torch.cat(
            [by_index[i] for i in range(num_experts)], dim=1)
    config = AdapterConfig.preset("asymlora", r=rank, alpha=alpha, num_experts=num_experts, dropout=0.05,
                                        targets=ATTENTION + MLP, mixture_targets=list(MLP))
    return out, config


def main(argv=None):
    progress_bars_only_on_a_terminal()  # a log file gets no carriage-return floods
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="the authors' output directory")
    ap.add_argument("--out", required=True)
    ap.add_argument("--alpha", type=float, default=64.0, help="their --lora_alpha (the paper: 64)")
    ap.add_argument("--model-base", default="./checkpoints/llava-v1.5-7b", help="the base they fine-tuned")
    ap.add_argument("--vision-tower", default=None)
    args = ap.parse_args(argv)
    tensors, config = convert(read_hydralora(args.checkpoint), args.alpha)
    os.makedirs(args.out, exist_ok=True)
    atomic_save_file(tensors, os.path.join(args.out, WEIGHTS_NAME))
    config.save(args.out)
    Base(model_name_or_path=args.model_base, vision_tower=args.vision_tower, template="v1").save(args.out)
    print(f"converted {len(tensors)} tensors (r={config.r}, experts={config.num_experts}) to {args.out}")


if __name__ == "__main__":
    main()
