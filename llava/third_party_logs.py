"""Two start-up lines of third-party libraries that say nothing about the run, filtered where they are logged.

- bitsandbytes, on importing (transformers imports PEFT, PEFT bitsandbytes): "Failed to load CPU gemm_4bit_forward
  from kernels-community ..." (an optional CPU kernel it tries to download; the built-in one is used).
- DeepSpeed, on importing (accelerate imports it whenever installed): "Setting accelerator to CPU. If you have GPU or
  other accelerator, we were unable to detect it." on a machine without one, which is what this machine is.
- torch, on every ZeRO-3 gather and reduce-scatter DeepSpeed 0.19 issues: a FutureWarning that
  `all_gather_into_tensor` / `reduce_scatter_tensor` are deprecated (hundreds of lines in a few steps; DeepSpeed's
  call, nothing a user can change).
Only these messages are dropped; the loggers keep their levels and every other line.
"""

from __future__ import annotations

import logging
import warnings

DEPRECATED_COLLECTIVES = r"`torch\.distributed\.(all_gather_into_tensor|reduce_scatter_tensor)` is deprecated"
DROPPED = {
    "bitsandbytes.backends.cpu.ops": "Failed to load CPU gemm_4bit_forward from kernels-community",
    "DeepSpeed": "Setting accelerator to CPU. If you have GPU or other accelerator",
}


class _Drop(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def install() -> None:
    """Idempotent; run before those libraries are imported (llava/__init__.py)."""
    for name, prefix in DROPPED.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Drop) for f in logger.filters):
            logger.addFilter(_Drop(prefix))
    warnings.filterwarnings("ignore", message=DEPRECATED_COLLECTIVES, category=FutureWarning)
