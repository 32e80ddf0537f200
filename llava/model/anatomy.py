"""Which modules of an image-text-to-text model are its language model, its projector and its vision tower.

transformers names them per family: LLaVA, LLaVA-NeXT, LLaVA-OneVision, Gemma 3 and InternVL hold `vision_tower`,
`multi_modal_projector` and `language_model`; Idefics3 and SmolVLM `vision_model`, `connector` and `text_model`;
Qwen2.5-VL and Qwen3-VL `visual` (whose `merger`, and Qwen3-VL's `deepstack_merger_list`, map vision features to the
language model's width) and `language_model`. The language model is what transformers' own `get_decoder()` returns;
the projector is the part named as one of PROJECTOR_PARTS; the vision tower is everything else beside them. Adapters
go into the language model only; the projector trains or not by flag; the tower stays frozen.
"""

from __future__ import annotations

from torch import nn

# what maps vision features into the language model, by the name each family gives it inside its multimodal body
# (`model.model`): LLaMA-Factory's projector keys, plus LLaVA-NeXT's and OneVision's `image_newline` (a learned vector in
# the language model's width, appended after each row of projected features) and Qwen3-VL's deepstack mergers (they
# project intermediate vision features into the first decoder layers), which train or freeze with the projector
PROJECTOR_PARTS = ("multi_modal_projector", "connector", "image_newline", "visual.merger", "visual.deepstack_merger_list")


def language_model(model: nn.Module) -> nn.Module:
    """The decoder stack (the module holding `layers`): a VLM's language model, or a bare causal LM's body."""
    get_decoder = getattr(model, "get_decoder", None)
    decoder = get_decoder() if get_decoder is not None else None
    if decoder is None or not hasattr(decoder, "layers"):
        inner = getattr(model, "model", None)
        decoder = getattr(inner, "language_model", None) or getattr(inner, "text_model", None) or inner
    if decoder is None or not hasattr(decoder, "layers"):
        raise ValueError(f"cannot find a language model with decoder layers in {type(model).__name__}")
    return decoder


def _body(model: nn.Module) -> nn.Module | None:
    """The multimodal body holding tower, projector and language model (`model.model` in transformers 5)."""
    inner = getattr(model, "model", None)
    return inner if inner is not None and inner is not language_model(model) else None


def projector_parts(model: nn.Module) -> list[tuple[str, nn.Module | nn.Parameter]]:
    """(name inside the body, module or parameter) of every projector part; empty for a bare LM."""
    body = _body(model)
    if body is None:
        return []
    return [(name, part) for name in PROJECTOR_PARTS if (part := _part(body, name)) is not None]


class ProjectorParts(nn.Module):
    """A view of a projector in several parts as one module: its state dict's keys are the parts' names inside the
    model's body, dots as underscores (`multi_modal_projector.linear_1.weight`, `image_newline`,
    `visual_merger.norm.weight`), and loading one writes the model's own tensors (the view holds the model's modules
    and parameters, not copies)."""

    def __init__(self, parts: list[tuple[str, nn.Module | nn.Parameter]]):
        super().__init__()
        for name, part in parts:
            key = name.replace(".", "_")
            if isinstance(part, nn.Parameter):
                self.register_parameter(key, part)
            else:
                self.add_module(key, part)


def projector(model: nn.Module) -> nn.Module | None:
    """The projector as one module: the part itself where there is one (LLaVA-1.5's two-layer MLP, Idefics3's
    connector, Qwen2.5-VL's merger), a ProjectorParts view where there are several; None for a bare LM."""
    parts = projector_parts(model)
    if not parts:
        return None
    if len(parts) == 1 and isinstance(parts[0][1], nn.Module):
        return parts[0][1]
    return ProjectorParts(parts)


def projector_parameter_names(model: nn.Module) -> set[str]:
    """The projector's parameters as `model.named_parameters()` names them (`model.multi_modal_projector.*` for
    LLaVA-1.5, `model.connector.*`, `model.image_newline`, `model.visual.merger.*`, ...)."""
    part = projector(model)
    ids = {id(p) for p in part.parameters()} if part is not None else set()
    return {name for name, p in model.named_parameters() if id(p) in ids}


def vision_parts(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name inside the body, module) of the vision tower: the body's modules that are neither the language model nor
    a projector part (for Qwen's `visual`, its children other than the mergers)."""
    body = _body(model)
    if body is None:
        return []
    lm = language_model(model)
    projector_names = {name for name, _ in projector_parts(model)}
    parts = []
    for name, child in body.named_children():  # parameters held by the body itself are projector parts
        if child is lm or name in projector_names:
            continue
        inside = [p for p in projector_names if p.startswith(name + ".")]
        if inside:  # a tower that holds its own merger: its other children are the tower
            parts += [(f"{name}.{sub}", m) for sub, m in child.named_children() if f"{name}.{sub}" not in inside]
        else:
            parts.append((name, child))
    return parts


def _part(body: nn.Module, name: str) -> nn.Module | nn.Parameter | None:
    owner, _, leaf = name.rpartition(".")
    try:
        parent = body.get_submodule(owner) if owner else body
    except AttributeError:
        return None
    part = getattr(parent, leaf, None)
    return part if isinstance(part, (nn.Module, nn.Parameter)) else None
