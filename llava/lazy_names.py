"""A package's public names, imported from their modules on first use (PEP 562).

The packages whose light modules run as commands on their own (`python -m llava.adapters.presets`,
`python -m llava.model.cpu_dtype`) or are imported without their heavy siblings (`llava.data`'s tokenisation without
its Arrow dataset) export their names this way, so importing the package does not import torch, transformers or
datasets for them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_names(package: str, homes: dict[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` for `package` that loads each name of `homes` (name -> submodule) when first asked."""
    def __getattr__(name: str):
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{homes[name]}"), name)
    return __getattr__
