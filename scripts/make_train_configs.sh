#!/usr/bin/env bash
# Writes configs/train/*.yaml from the training scripts' own dry runs, so a file and its script cannot disagree
# (tests/test_config_file.py regenerates them and compares). paper_*: LLaVA-1.5's recipe on 8 GPUs from Vicuna-7B +
# the stage-1 projector; authors_*: PRESET=authors (the AsymLoRA authors' released settings, one GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
OUT=${OUT:-configs/train}
mkdir -p "$OUT"
manifest=$(mktemp)
trap 'rm -f "$manifest"' EXIT
add() {  # name, description, then the environment of the dry run: one manifest line "name<TAB>header<TAB>command"
    local name=$1 about=$2; shift 2
    local script="scripts/finetune_${name#*_}.sh" line
    line=$(env "$@" HAS_CUDA=1 DRY_RUN=1 bash "$script" 2>/dev/null | grep '^command:')
    printf '%s\t%s\\nmade by scripts/make_train_configs.sh from the dry run of: %s bash %s\\nrun: CONFIG=configs/train/%s.yaml bash scripts/finetune.sh   (flags in EXTRA_ARGS override values here)\t%s\n' \
        "$name" "$about" "$*" "$script" "$name" "${line#command: }" >> "$manifest"
}
for scheme in lora asymlora moe_lora mixlora; do
    add "paper_$scheme" "$scheme, LLaVA-1.5's stage-2 recipe (8 GPUs x 16, global batch 128) from Vicuna-7B + stage-1 projector" NUM_GPUS=8
    add "authors_$scheme" "$scheme, the AsymLoRA authors' settings (PRESET=authors: from llava-v1.5-7b, one GPU, global batch 2)" PRESET=authors NUM_GPUS=1
done
"$PYTHON" -m llava.train.config_file from-commands "$manifest" --out-dir "$OUT"
