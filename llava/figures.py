"""Figures as files, outside pyplot: every plot of the project goes through these two (no backend chosen or
changed, so a notebook that imports the package keeps its own; written atomically). matplotlib is imported when a
figure is made, not with the package: every training process imports the plotting code and plots only at its end."""

from __future__ import annotations

import os


def subplots(*args, figsize=None, layout="constrained", **kwargs):
    """A figure and its axes outside pyplot: files only, and no backend chosen or changed (a notebook that imports
    this package keeps its own). Laid out by matplotlib's constrained layout (titles, colour bars and outside
    legends get their room), so saving draws the figure once instead of twice for a "tight" bounding box.
    layout=None: the caller places the axes (`fig.subplots_adjust`), for figures every run writes, where the layout
    pass costs as much as drawing."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout=layout)
    return fig, fig.subplots(*args, **kwargs)


def save_figure(fig, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.png"
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)
