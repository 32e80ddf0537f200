#!/usr/bin/env bash
# MoE-LoRA baseline: E=3 full LoRA experts (own A and B) on the MLP behind one router per block, LoRA on attention;
# r=32, alpha=64, balance 0.05 (the paper's comparison setting). Its routers have no bias (AsymLoRA's, the authors'
# moe.py, have one): ROUTER_BIAS=True gives it AsymLoRA's router. See scripts/finetune.sh.
export SCHEME=moe_lora
export NUM_EXPERTS=${NUM_EXPERTS:-3} ROUTER_SCOPE=${ROUTER_SCOPE:-mlp_block} BALANCE_COEF=${BALANCE_COEF:-0.05}
export MIXTURE_TARGETS=${MIXTURE_TARGETS:-gate_proj,up_proj,down_proj}
if [ "${MODEL:-}" != "tiny" ]; then
    export R=${R:-32} ALPHA=${ALPHA:-64} LR=${LR:-2e-4} PROJECTOR_LR=${PROJECTOR_LR:-2e-5}
fi
exec bash "$(dirname "$0")/finetune.sh"
