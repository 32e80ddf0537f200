"""LLaVA conversation data: reading, validation, tokenisation with labels, batching, sampling.

The names below load on first use (PEP 562): building a model imports the tokenisation helpers, and only training
needs the Arrow-backed dataset (which imports `datasets`, about a second per process).
"""

from __future__ import annotations

from llava.lazy_names import lazy_names

_HOMES = {"SupervisedCollator": "collator", "ProcessorCollator": "collator", "SupervisedDataset": "dataset",
          "DataError": "sources", "parse_data_path": "sources", "read_records": "sources"}
__all__ = list(_HOMES)

__getattr__ = lazy_names(__name__, _HOMES)
