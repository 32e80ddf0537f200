"""Run under `torch.distributed.run` with DeepSpeed ZeRO-3 active: load one model source, gather every parameter
and compare it with the tensors in the files it came from. argv[1] is a comma-separated list of sources;
writes {source: {"checked": N, "partitioned": P, "mismatched": [...]}} to argv[2] from rank 0; argv[3] is a JSON file of the paths tests/model_parts.py wrote. Used by tests/test_zero3_loading.py."""

import json
import os
import sys

import torch
from safetensors.torch import load_file
from transformers import TrainingArguments

from llava import process_gc
from llava.model.builder import load_model
from llava.model.weights import map_original_key
from llava.model.zero import init_deepspeed_distributed


def reference(source: str, paths: dict) -> dict[str, torch.Tensor]:
    """Expected full tensors by LlavaForConditionalGeneration name, read from the files (tiny: a plain build)."""
    if source == "tiny":
        from llava.model.tiny import build_tiny
        from llava.model.zero import zero3_paused

        with zero3_paused():
            return dict(build_tiny(seed=0)[0].named_parameters())
    if source == "gguf":  # transformers de-quantizes the file; the reference is the same load without ZeRO
        from llava.model.parts import from_parts
        from llava.model.zero import zero3_paused

        with zero3_paused():  # no projector file: the projector is new, so it is not compared
            params = from_parts(paths["clip"], paths["gguf"])[0].named_parameters()
            return {k: v for k, v in params if not k.startswith("model.multi_modal_projector.")}
    if source == "llava_hf":  # the llava-hf hub layout: language_model.model.*, language_model.lm_head, vision_tower.*
        renames = [("language_model.model.", "model.language_model."), ("language_model.lm_head.", "lm_head."),
                   ("vision_tower.", "model.vision_tower."), ("multi_modal_projector.", "model.multi_modal_projector.")]
        out = {}
        for key, value in load_file(os.path.join(paths["hf"], "model.safetensors")).items():
            for old, new in renames:
                if key.startswith(old):
                    key = new + key[len(old):]
                    break
            out[key] = value
        return out
    tower = {"model.vision_tower." + k: v for k, v in load_file(os.path.join(paths["clip"], "model.safetensors")).items()}
    if source == "parts":
        lm = load_file(os.path.join(paths["lm"], "model.safetensors"))
        lm = {("lm_head." + k[8:]) if k.startswith("lm_head.") else "model.language_model." + k[6:]: v
              for k, v in lm.items()}
        proj = {map_original_key(k): v for k, v in torch.load(paths["projector"], weights_only=True).items()}
        return {**tower, **lm, **proj}
    orig = {map_original_key(k): v for k, v in load_file(os.path.join(paths["orig"], "model.safetensors")).items()}
    return {**tower, **orig}


def check(source: str, paths: dict) -> dict:
    model_path = {"tiny": "tiny", "parts": paths["lm"], "original": paths["orig"], "llava_hf": paths["hf"],
                  "gguf": paths.get("gguf")}[source]
    model, _, _ = load_model(model_path, vision_tower=paths["clip"] if source in ("parts", "gguf") else None,
                             pretrain_mm_mlp_adapter=paths["projector"] if source == "parts" else None)
    import deepspeed

    expected = reference(source, paths)
    params = dict(model.named_parameters())
    partitioned = sum(hasattr(p, "ds_id") for p in params.values())
    mismatched = []
    with deepspeed.zero.GatheredParameters(list(params.values())):
        for name, p in params.items():
            if source == "gguf" and name.startswith("model.multi_modal_projector."):
                continue
            want = expected.get(name)
            if want is None or tuple(want.shape) != tuple(p.shape) or not torch.equal(p.detach().cpu(), want.to(p.dtype)):
                mismatched.append(name)
    return {"checked": len(params), "partitioned": partitioned, "mismatched": mismatched}


def main():
    process_gc.imports_done(command=True)  # as the package's commands run
    sources, out_path = sys.argv[1].split(","), sys.argv[2]
    with open(sys.argv[3]) as f:
        paths = json.load(f)
    args = TrainingArguments(output_dir=os.path.dirname(out_path), deepspeed="configs/deepspeed/zero3.json",
                             use_cpu=True, per_device_train_batch_size=1)  # activates HF's ZeRO-3 config
    init_deepspeed_distributed(True)
    results = {source: check(source, paths) for source in sources}  # one launch: DeepSpeed starts once
    if args.process_index == 0:
        with open(out_path, "w") as f:
            json.dump(results, f)


if __name__ == "__main__":
    main()
