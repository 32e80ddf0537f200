#!/usr/bin/env bash
# MixLoRA (Shen et al. 2024): per instance, r factors picked from pools of E on every target (IFS + CFS routers),
# the paper's E and r at 7B scale (python -m llava.adapters.presets show). See scripts/finetune.sh.
export SCHEME=mixlora
exec bash "$(dirname "$0")/finetune.sh"
