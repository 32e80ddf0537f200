"""A small LLaVA on disk in the layouts users have: CLIP tower dir, Llama dir, stage-1 `mm_projector.bin`,
an original-LLaVA checkpoint and a llava-hf dir, all holding the same weights (tiny preset, a "trained" projector)."""

from __future__ import annotations

import json
import os

import torch
from transformers import LlamaForCausalLM

from llava.model.builder import save_original_llava
from llava.model.tiny import build_tiny

PROJECTOR_KEYS = {"linear_1": "model.mm_projector.0", "linear_2": "model.mm_projector.2"}


def write_parts(root: str) -> dict[str, str]:
    model, tokenizer = build_tiny(seed=0)
    with torch.no_grad():  # a "trained" projector, so a missing one would show
        torch.manual_seed(7)
        for p in model.model.multi_modal_projector.parameters():
            p.normal_(0, 0.1)
    paths = {k: os.path.join(root, k) for k in ("clip", "lm", "orig", "hf")}
    model.model.vision_tower.save_pretrained(paths["clip"])
    lm = LlamaForCausalLM(model.config.text_config)
    lm.model.load_state_dict(model.model.language_model.state_dict())
    lm.lm_head.load_state_dict(model.lm_head.state_dict())
    lm.save_pretrained(paths["lm"])
    tokenizer.save_pretrained(paths["lm"])
    proj = {PROJECTOR_KEYS[k.split(".")[0]] + "." + k.split(".", 1)[1]: v.clone()
            for k, v in model.model.multi_modal_projector.state_dict().items()}
    paths["projector"] = os.path.join(root, "mm_projector.bin")
    torch.save(proj, paths["projector"])
    save_original_llava(model, tokenizer, paths["orig"], paths["clip"])
    model.save_pretrained(paths["hf"])
    tokenizer.save_pretrained(paths["hf"])
    return paths


def write_mixture(root: str, per_task: int = 8) -> str:
    """Three tasks, image and text-only samples mixed (every 4th text-only). Returns the --data_path spec."""
    from PIL import Image

    os.makedirs(root, exist_ok=True)
    for i in range(4):
        Image.new("RGB", (40 + 8 * i, 40), (40 * i, 200 - 30 * i, 90)).save(os.path.join(root, f"img{i}.png"))
    answers = {"shape": ["circle", "triangle"], "color": ["red", "blue"], "yesno": ["yes", "no"]}
    spec = []
    for task, options in answers.items():
        rows = []
        for i in range(per_task):
            image = f"img{i % 4}.png" if i % 4 else None
            question = ("<image>\n" if image else "") + f"what {task} is it?"
            row = {"id": f"{task}{i}", "conversations": [{"from": "human", "value": question},
                                                          {"from": "gpt", "value": options[i % 2]}]}
            if image:
                row["image"] = image
            rows.append(row)
        path = os.path.join(root, f"{task}.json")
        with open(path, "w") as f:
            json.dump(rows, f)
        spec.append(f"{task}={path}")
    return ",".join(spec)
