"""The task-expert dependence of routed runs at a glance: one row per (scheme, balance coefficient or variant), one column per
routed layer, colour = mutual information between task and top expert in bits (0: every task picks alike)."""

from __future__ import annotations

from llava.figures import save_figure, subplots


def plot_mutual_information(rows: list[dict], path: str, key: str = "mi_bits", tokens: str = "all tokens") -> None:
    """rows: router_specialisation's results ({"scheme", "coef", key: {layer: bits}, "mi_ceiling"})."""
    layers = sorted({int(k) for r in rows for k in r[key]})
    grid = [[r[key].get(k, r[key].get(str(k), float("nan"))) for k in layers] for r in rows]
    ceiling = max(r["mi_ceiling"] for r in rows)
    top = max(max(row) for row in grid)
    fig, ax = subplots(figsize=(2.0 + 0.28 * len(layers), 1.2 + 0.4 * len(rows)))
    image = ax.imshow(grid, vmin=0, vmax=max(top, 1e-3), cmap="magma", aspect="auto")
    labels = [f"{r['scheme']} {r['variant']}" if r.get("variant") else f"{r['scheme']} coef {r['coef']:g}" for r in rows]
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.set_xticks(range(len(layers)), [str(k) for k in layers], fontsize=6)
    ax.set_xlabel("layer")
    fig.colorbar(image, ax=ax, label="MI(task; top expert), bits")
    ax.set_title(f"router specialisation over {tokens} (colour scale to the largest value; ceiling log2(min(T, E)) = {ceiling:.2f})",
                 fontsize=8)
    save_figure(fig, path)
