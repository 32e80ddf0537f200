#!/usr/bin/env bash
# MoE-LoRA baseline: E=3 full LoRA experts (own A and B) on the MLP behind one router per block, LoRA on attention;
# r=32, alpha=64, balance 0.05 (the paper's comparison setting), and AsymLoRA's router (dense, with a bias, the
# authors' moe.py), so the two differ only in whether A is shared. See scripts/finetune.sh.
export SCHEME=moe_lora
export NUM_EXPERTS=${NUM_EXPERTS:-3} ROUTER_SCOPE=${ROUTER_SCOPE:-mlp_block} BALANCE_COEF=${BALANCE_COEF:-0.05}
export BALANCE_LOSS=${BALANCE_LOSS:-hydra} ROUTER_BIAS=${ROUTER_BIAS:-True}
export MIXTURE_TARGETS=${MIXTURE_TARGETS:-gate_proj,up_proj,down_proj}
if [ "${MODEL:-}" != "tiny" ]; then
    export R=${R:-32} ALPHA=${ALPHA:-64} LR=${LR:-2e-4} PROJECTOR_LR=${PROJECTOR_LR:-2e-5}
fi
exec bash "$(dirname "$0")/finetune.sh"
