#!/usr/bin/env bash
# MoE-LoRA baseline: full LoRA experts (own A and B) on the MLP behind one router per block, LoRA on attention, the
# paper's comparison setting (python -m llava.adapters.presets show). Its routers have no bias (AsymLoRA's, the
# authors' moe.py, have one): ROUTER_BIAS=True gives it AsymLoRA's router. See scripts/finetune.sh.
export SCHEME=moe_lora
exec bash "$(dirname "$0")/finetune.sh"
