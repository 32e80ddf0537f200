#!/usr/bin/env bash
# AsymLoRA: shared A, routed B heads on the MLP (one router per MLP block), plain LoRA on attention, hydra balance
# loss, biased routers (the preset: python -m llava.adapters.presets show); lr 2e-4, projector lr 2e-5, 1 epoch,
# ZeRO-2, from Vicuna-7B + the stage-1 projector with LLaVA-1.5's LoRA recipe around it (global batch 128, pad).
# NUM_TASKS=-1 gives one B head per data task instead (paper Eq. 2; use NUM_EXPERTS=1). See scripts/finetune.sh.
#
# PRESET=authors: the AsymLoRA authors' released MLLM-HydraLoRA script instead (scripts/finetune.sh sets it: from
# llava-v1.5-7b, one GPU, batch 1 x 2, resize); its adapter settings are these. docs/paper.md compares the recipes.
export SCHEME=asymlora
exec bash "$(dirname "$0")/finetune.sh"
