"""Fold adapters into the frozen weights where that is exact: lora, and asymlora per task when E=1.

CLI: python -m llava.adapters.merge --checkpoint DIR [--task NAME] --out DIR
"""

from __future__ import annotations

import argparse

import torch

from llava.adapters.attached import adapter_config, detach
from llava.adapters.inject import adapter_modules
from llava.adapters.layer import AdapterLinear
from llava.adapters.routing import BlockRouter
from llava.console import progress_bars_only_on_a_terminal


def merge_adapters(model, task: str | int | None = None):
    """Replace every AdapterLinear by its base linear with W += s * B_task A. Raises where merging is not exact."""
    config = adapter_config(model)
    task_id = config.task_id(task)
    layers = [(n, m) for n, m in adapter_modules(model) if isinstance(m, AdapterLinear)]
    quantized = [n for n, m in layers if not m.base.weight.dtype.is_floating_point]
    if quantized:
        raise ValueError(f"{quantized[0]} wraps a quantized (4/8-bit) weight: merging would need de-quantizing; "
                         "reload the base in bf16/fp32 (no --bits) and merge that")
    deltas = [(m, m.delta_weight(task_id)) for _, m in layers]  # all checks before the first change
    with torch.no_grad():
        for module, delta in deltas:
            weight = module.base.weight  # the sum in fp32, one rounding to the base dtype
            weight.copy_((weight.float() + delta.float()).to(weight.dtype))
    return unload_adapters(model)


def unload_adapters(model):
    """Every wrapped linear back to its base linear, the routers and their hooks gone, nothing merged (PEFT's
    `unload`): the model as it was before inject_adapters, with the base weights it holds now."""
    for name, module in adapter_modules(model):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        if isinstance(module, AdapterLinear):
            setattr(parent, child, module.base)
        elif isinstance(module, BlockRouter):
            module.remove_hooks()
            delattr(parent, child)
    detach(model)
    return model


def main(argv=None):
    progress_bars_only_on_a_terminal()  # a log file gets no carriage-return floods
    # An entry point may reach up a layer: rebuilding the frozen base is the model package's job.
    from llava.adapters.checkpoint import load_checkpoint_model
    from llava.adapters.io import load_adapters
    from llava.model.hf_export import save_llava_hf

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="a training checkpoint or output directory")
    ap.add_argument("--task", default=None, help="task name (or id) whose B head is merged (asymlora with task heads)")
    ap.add_argument("--out", required=True, help="where the merged llava-hf model goes")
    ap.add_argument("--dtype", default="fp32")
    args = ap.parse_args(argv)
    model, tokenizer, image_processor = load_checkpoint_model(args.checkpoint, dtype=args.dtype, load_weights=False)
    load_adapters(model, args.checkpoint)
    merge_adapters(model, args.task)
    version = (getattr(model, "llava_base_info", None) or {}).get("version", "vicuna_v1")
    save_llava_hf(model, tokenizer, image_processor, args.out, version)  # loads in AutoProcessor / pipeline as is
    print(f"merged model written to {args.out}")


if __name__ == "__main__":
    main()
