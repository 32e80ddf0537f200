#!/usr/bin/env bash
# AsymLoRA, the paper preset: shared A, N=3 routed B heads on the MLP (one router per MLP block), plain LoRA on
# attention; r=32, alpha=64, hydra balance loss 0.05, biased routers, lr 2e-4, projector lr 2e-5, 1 epoch, ZeRO-2,
# from Vicuna-7B + the stage-1 projector with LLaVA-1.5's LoRA recipe around it (global batch 128, pad).
# NUM_TASKS=-1 gives one B head per data task instead (paper Eq. 2; use NUM_EXPERTS=1). See scripts/finetune.sh.
#
# PRESET=authors: the AsymLoRA authors' released MLLM-HydraLoRA script instead (scripts/finetune.sh sets it: from
# llava-v1.5-7b, one GPU, batch 1 x 2, resize); its adapter settings are these. docs/paper.md compares the recipes.
export SCHEME=asymlora
export NUM_EXPERTS=${NUM_EXPERTS:-3} ROUTER_SCOPE=${ROUTER_SCOPE:-mlp_block} BALANCE_COEF=${BALANCE_COEF:-0.05}
export BALANCE_LOSS=${BALANCE_LOSS:-hydra} ROUTER_BIAS=${ROUTER_BIAS:-True}
export MIXTURE_TARGETS=${MIXTURE_TARGETS:-gate_proj,up_proj,down_proj}
if [ "${MODEL:-}" != "tiny" ]; then
    export R=${R:-32} ALPHA=${ALPHA:-64} LR=${LR:-2e-4} PROJECTOR_LR=${PROJECTOR_LR:-2e-5}
fi
exec bash "$(dirname "$0")/finetune.sh"
