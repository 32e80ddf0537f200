"""Adapters on the image-text-to-text families transformers ships (LLaVA-NeXT, LLaVA-OneVision, Qwen2.5-VL, Qwen3-VL,
Idefics3, SmolVLM, Gemma 3, InternVL): each family's language model, projector and vision tower are found as
transformers names them, every scheme's adapters go into the language model's seven linears per layer and nowhere
else, and a few steps on one batch lower its loss while the base stays as it was. Tiny random models from each
family's own config classes (tests/helpers/vlm_families.py); image batches through the family's own processor where
transformers builds one without torchvision."""

import pytest
import torch
from PIL import Image

from llava.adapters import AdapterConfig, AdapterLinear, adapter_batch, inject_adapters
from llava.adapters.presets import ATTENTION, MLP
from llava.model import anatomy
from tests.helpers.vlm_families import ANATOMY, FAMILIES, WITH_PROCESSOR, build_model, build_processor

SCHEMES = {
    "lora": AdapterConfig.preset("lora", "tiny", r=4, alpha=8),
    "asymlora": AdapterConfig.preset("asymlora", "tiny", r=4, alpha=8),
    "moe_lora": AdapterConfig.preset("moe_lora", "tiny", r=4, alpha=8),
    "mixlora": AdapterConfig.preset("mixlora", "tiny", r=2, alpha=4, num_experts=4),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_language_model_projector_and_tower_are_found_and_hold_every_parameter_once(family):
    model = build_model(family)
    lm_name, projector_names, tower_names = ANATOMY[family]
    assert anatomy.language_model(model) is getattr(model.model, lm_name)
    assert [name for name, _ in anatomy.projector_parts(model)] == projector_names
    assert [name for name, _ in anatomy.vision_parts(model)] == tower_names
    tied = model.lm_head.weight is model.get_input_embeddings().weight  # Gemma 3: the embeddings are the head
    groups = {"language model": anatomy.language_model(model), "projector": anatomy.projector(model),
              **({} if tied else {"lm_head": model.lm_head}), **dict(anatomy.vision_parts(model))}
    owner = {}
    for group, module in groups.items():
        for p in module.parameters():
            assert id(p) not in owner, (family, group, owner.get(id(p)))
            owner[id(p)] = group
    unowned = [name for name, p in model.named_parameters() if id(p) not in owner]
    assert not unowned, (family, unowned)


def test_the_projector_view_saves_and_loads_the_models_own_tensors():
    """LLaVA-NeXT's projector is two parts (the MLP and image_newline): one state dict, loaded back in place."""
    model = build_model("llava_next")
    view = anatomy.projector(model)
    state = {k: torch.full_like(v, 0.5) for k, v in view.state_dict().items()}
    assert set(state) == {"image_newline", "multi_modal_projector.linear_1.weight", "multi_modal_projector.linear_1.bias",
                          "multi_modal_projector.linear_2.weight", "multi_modal_projector.linear_2.bias"}
    anatomy.projector(model).load_state_dict(state)
    assert torch.all(model.model.image_newline == 0.5)
    assert torch.all(model.model.multi_modal_projector.linear_1.weight == 0.5)


def image_batch(family):
    """The family's processor's inputs for one image question and its answer, labels on every token."""
    processor, image_id = build_processor(family)
    tag = {"gemma3": "<start_of_image>"}.get(family, "<image>")
    image = Image.new("RGB", (70, 50), "red")
    inputs = processor(text=[f"{tag}what colour is it? red"], images=[[image]] if family == "idefics3" else [image],
                       return_tensors="pt")
    assert (inputs["input_ids"] == image_id).sum() > 0
    return dict(inputs), image_id


def text_batch():
    torch.manual_seed(1)
    ids = torch.randint(0, 256, (2, 12))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


@pytest.mark.parametrize("scheme", list(SCHEMES))
@pytest.mark.parametrize("family", FAMILIES)
def test_every_scheme_adapts_the_language_model_only_and_learns(family, scheme):
    with_images = family in WITH_PROCESSOR
    batch, image_id = image_batch(family) if with_images else (text_batch(), None)
    model = build_model(family, **({"image_id": image_id} if with_images else {}))
    base = {name: p.detach().clone() for name, p in model.named_parameters()}
    inject_adapters(model, SCHEMES[scheme], train_projector=True)

    lm = anatomy.language_model(model)
    wrapped = [name for name, m in model.named_modules() if isinstance(m, AdapterLinear)]
    in_lm = {id(m) for m in lm.modules()}
    assert all(id(model.get_submodule(name)) in in_lm for name in wrapped), wrapped
    assert sorted(name.rsplit(".", 1)[1] for name in wrapped) == sorted((ATTENTION + MLP) * len(lm.layers))
    projector_ids = {id(p) for p in anatomy.projector(model).parameters()}
    for name, p in model.named_parameters():
        adapter = "lora_" in name or "router" in name
        assert p.requires_grad == (adapter or id(p) in projector_ids), name

    task_ids = torch.zeros(len(batch["input_ids"]), dtype=torch.long)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    model.train()
    losses = []
    for _ in range(4):
        with adapter_batch(model, task_ids=task_ids, token_mask=batch["attention_mask"]):
            loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0], (family, scheme, losses)
    frozen = {name: p for name, p in model.named_parameters() if not p.requires_grad}
    moved = [name for name, p in frozen.items() if not torch.equal(p, base[name.replace(".base.", ".")])]
    assert not moved, moved
    if with_images:  # the image reached the language model through the projector, which learned from it
        changed = [name for name, p in model.named_parameters() if id(p) in projector_ids and not torch.equal(p, base[name])]
        assert changed, family
