#!/usr/bin/env bash
# MixLoRA (Shen et al. 2024): per instance, r factors picked from pools of E on every target (IFS + CFS routers).
# Defaults follow the paper's E=32, r=8 at 7B scale. See scripts/finetune.sh.
export SCHEME=mixlora
if [ "${MODEL:-}" = "tiny" ]; then
    export NUM_EXPERTS=${NUM_EXPERTS:-16} R=${R:-4} ALPHA=${ALPHA:-8}
else
    export NUM_EXPERTS=${NUM_EXPERTS:-32} R=${R:-8} ALPHA=${ALPHA:-16} LR=${LR:-2e-4} PROJECTOR_LR=${PROJECTOR_LR:-2e-5}
fi
exec bash "$(dirname "$0")/finetune.sh"
