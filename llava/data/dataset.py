"""A lazy supervised dataset: records are validated when read (once, into a memory-mapped Arrow table:
arrow_records.py), tokenised and decoded only when fetched."""

from __future__ import annotations

import logging
import os

from PIL import Image
from torch.utils.data import Dataset

from llava.conversation import get_template
from llava.data.arrow_records import load_records
from llava.data.preprocess import move_image_to_front, place_images, tokenize_conversation
from llava.data.processor_batch import Conversation
from llava.data.sources import DataError, SkipReport

logger = logging.getLogger(__name__)


class SupervisedDataset(Dataset):
    """Items are dicts (input_ids, labels, pixel_values | None, task_id), or None for a skipped bad sample.

    With `skip_bad=False` (the default) every bad sample raises DataError naming file and sample id.
    With `skip_bad=True` it is logged and counted in `self.report`, and the collator drops the None.
    """

    def __init__(self, data_path: str, tokenizer, image_transform=None, image_folder: str = "",
                 template: str = "vicuna_v1", image_seq_length: int = 576, model_max_length: int = 2048,
                 skip_bad: bool = False, defer_errors: bool = False, processor=None):
        self.report = SkipReport()
        self.data_path = data_path
        # defer_errors: structurally bad records are set aside in self.report instead of raising at the first one,
        # so the pre-flight summary can list every problem at once (the trainer then stops or skips)
        self.records, self.task_names = load_records(data_path, skip_bad=skip_bad or defer_errors, report=self.report)
        if not len(self.records):
            raise DataError(f"{data_path}: no usable samples")
        self.tokenizer = tokenizer
        self.image_transform = image_transform
        self.image_folder = image_folder
        self.template = get_template(template, tokenizer)
        self.image_seq_length = image_seq_length
        self.model_max_length = model_max_length
        self.skip_bad = skip_bad
        self.truncated = 0
        # another family than LLaVA-1.5 (llava/model/image_text_to_text.py): items are conversations with their images,
        # made into tokens, labels and image inputs a batch at a time by its processor (ProcessorCollator)
        self.processor = processor

    def drop(self, indices) -> None:
        """Remove records (the pre-flight check's bad samples) so training never sees them."""
        drop = set(indices)
        self.records = self.records.without(drop)
        if not len(self.records):
            raise DataError(f"{self.data_path}: no usable samples left after skipping {len(drop)} bad ones")

    def __len__(self) -> int:
        return len(self.records)

    @property
    def modality_lengths(self) -> list[int]:
        """LLaVA's convention: approximate length, positive for image samples, negative for text-only ones."""
        return self.records.modality_lengths(self.image_seq_length)

    def _load_image(self, record, where: str):
        image = open_image(os.path.join(self.image_folder, record.one_image(where)), where)
        if self.image_transform is None:
            raise DataError(where, "sample has an image but the model has no image transform")
        return self.image_transform(image)

    def __getitem__(self, index: int):
        record = self.records[index]
        where = f"{record.file}: sample {record.sample_id}"
        if self.processor is not None:
            return self._conversation(record, where, index)
        try:
            pixel_values = self._load_image(record, where) if record.image else None
            turns = move_image_to_front(record.turns, record.image is not None)
            tok = tokenize_conversation(turns, self.template, self.tokenizer, self.image_seq_length,
                                        self.model_max_length, where)
        except DataError as e:
            if not self.skip_bad:
                raise
            self.report.add(e.reason, where)
            return None
        if tok.truncated:
            self.truncated += 1
            logger.warning("%s: truncated to model_max_length=%d", where, self.model_max_length)
        return {"input_ids": tok.input_ids, "labels": tok.labels, "pixel_values": pixel_values,
                "task_id": record.task_id, "index": index}


    def _conversation(self, record, where: str, index: int):
        try:
            images = [open_image(os.path.join(self.image_folder, path), where) for path in record.images]
        except DataError as e:
            if not self.skip_bad:
                raise
            self.report.add(e.reason, where)
            return None
        turns = place_images(record.turns, len(images))
        return {"conversation": Conversation(turns, images, where), "task_id": record.task_id, "index": index}


def open_image(path: str, where: str) -> Image.Image:
    """The image decoded as stored (the transform converts: 16-bit scaled, not saturated), or a DataError naming the
    sample and the file."""
    if not os.path.exists(path):
        raise DataError(where, f"image file {path} not found")
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except Exception as e:  # PIL's decoders raise many kinds on a corrupt file (struct.error, IndexError, ...)
        raise DataError(where, f"image file {path} is corrupt or unreadable: {type(e).__name__}: {e}") from e
