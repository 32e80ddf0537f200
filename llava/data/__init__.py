"""LLaVA conversation data: reading, validation, tokenisation with labels, batching, sampling."""

from llava.data.collator import SupervisedCollator
from llava.data.dataset import SupervisedDataset
from llava.data.sources import DataError, parse_data_path, read_records

__all__ = ["SupervisedDataset", "SupervisedCollator", "DataError", "parse_data_path", "read_records"]
