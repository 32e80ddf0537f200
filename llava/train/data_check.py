"""The training data read and checked before step 1 (pre-flight, data/preflight.py)."""

from __future__ import annotations

import json
import logging
import os

from llava.data import DataError, SupervisedDataset
from llava.data.preflight import preflight, summary
from llava.model.image import ImageTransform
from llava.model.image_text_to_text import is_processor
from llava.train.distributed import main_process_first

logger = logging.getLogger("llava.train")
FAMILY_IMAGE_TOKENS = 256


def read_training_data(model, tokenizer, image_processor, model_args, data_args, training_args) -> SupervisedDataset:
    """`image_processor` is a whole processor for another family than LLaVA-1.5 (is_processor)."""
    family = is_processor(image_processor)
    with main_process_first(training_args, "read-data"):  # rank 0 builds the Arrow cache, others map it
        dataset = SupervisedDataset(
            data_args.data_path, tokenizer,
            None if family else ImageTransform(image_processor, data_args.image_aspect_ratio),
            image_folder=data_args.image_folder, template=model_args.version,
            # LLaVA's image token count; another family's varies with the image: its length grouping counts a nominal
            # FAMILY_IMAGE_TOKENS per image
            image_seq_length=getattr(model.config, "image_seq_length", None) or FAMILY_IMAGE_TOKENS,
            model_max_length=training_args.model_max_length, skip_bad=data_args.skip_bad_samples, defer_errors=True,
            processor=image_processor if family else None)
    logger.info("%d samples, tasks %s", len(dataset), dataset.task_names)
    check_data_before_training(dataset, data_args, training_args)
    return dataset


def check_data_before_training(dataset, data_args, training_args) -> None:
    """Pre-flight every sample (data/preflight.py) after the structural read: stop with one summary of every
    problem, or (--skip_bad_samples) drop exactly the bad samples and list them in OUTPUT/skipped_samples.jsonl."""
    workers = data_args.preflight_workers
    if workers < 0:
        workers = min(8, os.cpu_count() or 1) if len(dataset) >= 2000 else 0
    with main_process_first(training_args, "pre-flight"):  # rank 0 checks, the others read its cache
        bad = preflight(dataset, workers=workers, show_progress=training_args.should_log)
    structural = list(dataset.report.skipped)
    problems = structural + [(f"{b.file}: sample {b.sample_id}", b.reason) for b in bad]
    if problems and not data_args.skip_bad_samples:
        raise DataError(summary(problems, len(dataset) + len(structural)))
    if training_args.should_save and data_args.skip_bad_samples:
        os.makedirs(training_args.output_dir, exist_ok=True)
        rows = [{"where": where, "reason": reason} for where, reason in structural] + [b.to_json() for b in bad]
        with open(os.path.join(training_args.output_dir, "skipped_samples.jsonl"), "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
    if bad:
        dataset.drop(b.index for b in bad)
    if problems:
        logger.warning("skipping %d bad samples found before training (OUTPUT/skipped_samples.jsonl)", len(problems))
    dataset.preflight_skipped = len(bad)
