"""Build DeepSpeed's CPU ops (CPU Adam for ZeRO-offload, the shared-memory collectives of the CPU accelerator) into
.torch_extensions before the suite, as `make test` does: they compile on first use, and a compile inside a timed
test would be charged to whichever test ran first."""

import os

os.environ.setdefault("DS_ACCELERATOR", "cpu")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.join(ROOT, ".torch_extensions"))

from deepspeed.accelerator import get_accelerator  # noqa: E402

if __name__ == "__main__":
    for name in ("CPUAdamBuilder", "ShareMemCommBuilder"):
        get_accelerator().create_op_builder(name).load(verbose=False)
    print(f"DeepSpeed CPU ops built in {os.environ['TORCH_EXTENSIONS_DIR']}")
