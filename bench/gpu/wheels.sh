#!/usr/bin/env bash
# The wheels a bare GPU image lacks, for `bash bench/gpu/validate.sh --wheels DIR OUT` (docs/benchmarks.md, "GPU"):
# transformers and datasets at the versions this project is tested with, and DeepSpeed (the deepspeed part), whose
# PyPI release is a source package: built here into a wheel with no op compiled (DS_BUILD_OPS=0: its CUDA ops compile
# on first use on the GPU machine, where nvcc is; a fused Adam is not needed, the Trainer's torch AdamW is used).
#
#   bash bench/gpu/wheels.sh DIR [PYTHON_VERSION]     # default 3.12 (the GPU image's Python)
set -euo pipefail
DIR=${1:?usage: bash bench/gpu/wheels.sh DIR [PYTHON_VERSION]}
PYV=${2:-3.12}
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
mkdir -p "$DIR"
"$PYTHON" -m pip download -qq --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$DIR" \
    transformers==5.25.0 huggingface_hub==2.4.0 httpx2==2.16.2 httpcore2==2.16.2 click==8.5.1 regex==2026.11.19 \
    truststore==0.10.5 idna==3.20 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 \
    hjson msgpack ninja py-cpuinfo einops pydantic pydantic-core annotated-types typing-inspection psutil
DS_BUILD_OPS=0 DS_ACCELERATOR=cuda "$PYTHON" -m pip wheel -qq --no-deps --no-build-isolation --no-cache-dir -w "$DIR" \
    "deepspeed==$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("deepspeed"))')"
ls -l "$DIR"
du -sh "$DIR"
