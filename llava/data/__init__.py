"""LLaVA conversation data: reading, validation, tokenisation with labels, batching, sampling.

The names below load on first use (PEP 562): building a model imports the tokenisation helpers, and only training
needs the Arrow-backed dataset (which imports `datasets`, about a second per process).
"""

from __future__ import annotations

import importlib

_HOMES = {"SupervisedCollator": "collator", "SupervisedDataset": "dataset", "DataError": "sources",
          "parse_data_path": "sources", "read_records": "sources"}
__all__ = list(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
