"""What the routers did for one reply, as HTML: the reply's tokens coloured by their top expert (per layer or summed
over layers) and a layer x expert heatmap of gate mass. Plain HTML tables and spans, so they read the same in any
gradio version and a browser test can find them."""

from __future__ import annotations

import html

import torch

PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#9c755f"]
SUMMED = "summed over layers"


def token_pieces(tokenizer, ids: list[int]) -> list[str]:
    """Each token's share of the decoded text (a token that ends a multi-byte character carries it)."""
    pieces, before = [], ""
    for k in range(1, len(ids) + 1):
        text = tokenizer.decode(ids[:k], skip_special_tokens=True)
        pieces.append(text[len(before):] if text.startswith(before) else text)
        before = text
    return pieces


def layer_choices(routing) -> list[str]:
    layers = 0 if routing is None else torch.as_tensor(routing).shape[1]
    return [SUMMED] + [f"layer {i}" for i in range(layers)]


def _colour(expert: int) -> str:
    return PALETTE[expert % len(PALETTE)]


def tokens_html(pieces: list[str], routing, view: str = SUMMED) -> str:
    if routing is None or not pieces:
        return "<div class='routing-none'>no routing to show: this checkpoint has no per-token router</div>"
    g = torch.as_tensor(routing, dtype=torch.float32)  # [tokens, layers, E]
    mass = g.sum(1) if view == SUMMED else g[:, int(view.split()[-1])]
    shares = mass / mass.sum(-1, keepdim=True).clamp_min(1e-12)
    spans = []
    for piece, share in zip(pieces, shares):
        top = int(share.argmax())
        tip = ", ".join(f"expert {e}: {v:.2f}" for e, v in enumerate(share.tolist()))
        text = html.escape(piece).replace("\n", "<br>") or "&#8203;"
        spans.append(f"<span class='routed-token' data-expert='{top}' title='{tip}' style='background:{_colour(top)}"
                     f";color:#fff;border-radius:3px;padding:0 1px;margin:0 1px'>{text}</span>")
    experts = g.shape[-1]
    legend = " ".join(f"<span style='background:{_colour(e)};color:#fff;padding:0 6px;border-radius:3px'>expert {e}"
                      "</span>" for e in range(experts))
    return (f"<div class='routing-tokens'><div style='margin-bottom:6px'>top expert per token, {html.escape(view)}: "
            f"{legend}</div><div style='line-height:1.9'>{''.join(spans)}</div></div>")


def heatmap_html(routing, title: str = "gate mass of this reply") -> str:
    """Layer x expert table: each layer's share of gate mass per expert over the reply's tokens (rows sum to 1)."""
    if routing is None:
        return "<div class='routing-none'>no per-token router in this checkpoint</div>"
    g = torch.as_tensor(routing, dtype=torch.float32)
    share = g.sum(0)
    share = share / share.sum(-1, keepdim=True).clamp_min(1e-12)  # [layers, E]
    head = "".join(f"<th style='padding:2px 8px'>expert {e}</th>" for e in range(share.shape[1]))
    rows = []
    for layer, row in enumerate(share.tolist()):
        cells = "".join(
            f"<td class='heat-cell' style='background:rgba(78,121,167,{v:.3f});padding:2px 8px;text-align:center;"
            f"color:{'#fff' if v > 0.55 else '#000'}'>{v:.2f}</td>" for v in row)
        rows.append(f"<tr><th style='padding:2px 8px'>layer {layer}</th>{cells}</tr>")
    return (f"<div class='routing-heatmap'><div>{html.escape(title)} ({g.shape[0]} tokens)</div>"
            f"<table style='border-collapse:collapse'><tr><th></th>{head}</tr>{''.join(rows)}</table></div>")
