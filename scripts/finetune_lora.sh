#!/usr/bin/env bash
# Vanilla LoRA, LLaVA-1.5's released stage-2 recipe (rank and alpha: python -m llava.adapters.presets show), lr 2e-4,
# projector lr 2e-5 (LLaVA ran ZeRO-3; the default here is ZeRO-2, see scripts/finetune.sh).
# MODEL=tiny runs it on CPU with the demo data. Every knob: see scripts/finetune.sh.
export SCHEME=lora
exec bash "$(dirname "$0")/finetune.sh"
