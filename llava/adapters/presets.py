"""Scheme presets: the one home of what each scheme's recipe sets (rank, alpha, targets, experts, router placement,
balance). Read by scripts/finetune_*.sh (through `python -m llava.adapters.presets shell SCHEME SIZE`), hence by the
configs/train/*.yaml generated from them, by the planner (train/plan_model.py) and by the kit's comparison arms.
Anything a preset leaves out takes AdapterConfig's default (the training CLI's defaults are AdapterConfig's).

Standard library only: every training script runs this module, and importing torch would cost it seconds.

python -m llava.adapters.presets show [SIZE]          the presets, one line per scheme
python -m llava.adapters.presets shell SCHEME SIZE    `R=${R:-32}`-style lines for the scripts (a set variable wins)
"""

from __future__ import annotations

import argparse
import shlex
import sys

ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP = ["gate_proj", "up_proj", "down_proj"]

# The AsymLoRA authors' placement: routed heads on the MLP (one router per MLP block, fed the block input), plain
# LoRA on attention, their per-sample balance loss.
_ROUTED_MLP = dict(num_experts=3, router_scope="mlp_block", mixture_targets=MLP, balance_coef=0.05)

SIZES = ("7b", "tiny")
PRESETS: dict[str, dict[str, dict]] = {
    # LLaVA-1.5-7B (Vicuna-7B): the paper's settings; LoRA is LLaVA-1.5's own LoRA recipe
    "7b": {
        "lora": dict(r=128, alpha=256),
        "asymlora": dict(r=32, alpha=64, **_ROUTED_MLP, balance_loss="hydra", router_bias=True),
        "moe_lora": dict(r=32, alpha=64, **_ROUTED_MLP),
        "mixlora": dict(r=8, alpha=16, num_experts=32),  # MixLoRA on every target
    },
    # the embedded tiny model (tests, MODEL=tiny): the same placement at smaller ranks, fewer MixLoRA factors
    "tiny": {
        "lora": dict(r=16, alpha=32),
        "asymlora": dict(r=16, alpha=32, **_ROUTED_MLP, balance_loss="hydra", router_bias=True),
        "moe_lora": dict(r=16, alpha=32, **_ROUTED_MLP),
        "mixlora": dict(r=4, alpha=8, num_experts=16),
    },
}
# AdapterConfig field -> the scripts' environment variable
SHELL_NAMES = {"r": "R", "alpha": "ALPHA", "num_experts": "NUM_EXPERTS", "router_scope": "ROUTER_SCOPE",
               "mixture_targets": "MIXTURE_TARGETS", "balance_coef": "BALANCE_COEF", "balance_loss": "BALANCE_LOSS",
               "router_bias": "ROUTER_BIAS"}


def preset(scheme: str, size: str = "7b", **overrides) -> dict:
    """AdapterConfig keyword arguments of `scheme`'s preset at `size` (a fresh dict), `overrides` on top."""
    if size not in PRESETS:
        raise ValueError(f"unknown preset size {size!r}; one of {list(PRESETS)}")
    if scheme not in PRESETS[size]:
        raise ValueError(f"unknown scheme {scheme!r}; one of {list(PRESETS[size])}")
    settings = {k: list(v) if isinstance(v, list) else v for k, v in PRESETS[size][scheme].items()}
    return dict(settings, scheme=scheme, **overrides)


def variant(scheme: str, r: int, **overrides) -> dict:
    """A scheme's 7B placement at another rank (alpha = 2r, as every preset has): the kit's comparison arms."""
    return preset(scheme, r=r, alpha=2 * r, **overrides)


def shell_value(value) -> str:
    if isinstance(value, list):
        return ",".join(value)
    return str(value)  # bools as True/False: what the training CLI parses


def shell_lines(scheme: str, size: str) -> list[str]:
    """One `NAME=${NAME:-value}` line per preset setting: a variable the user set (non-empty) wins."""
    settings = preset(scheme, size)
    return [f"{SHELL_NAMES[k]}=${{{SHELL_NAMES[k]}:-{shlex.quote(shell_value(v))}}}"
            for k, v in settings.items() if k != "scheme"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="the presets, one line per scheme")
    show.add_argument("size", nargs="?", default="7b", choices=SIZES)
    shell = sub.add_parser("shell", help="assignments for scripts/finetune.sh")
    shell.add_argument("scheme")
    shell.add_argument("size", choices=SIZES)
    args = ap.parse_args(argv)
    try:
        if args.command == "show":
            for name in PRESETS[args.size]:
                settings = preset(name, args.size)
                print(f"{name}: " + ", ".join(f"{k}={shell_value(v)}" for k, v in settings.items() if k != "scheme"))
        else:
            print("\n".join(shell_lines(args.scheme, args.size)))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
