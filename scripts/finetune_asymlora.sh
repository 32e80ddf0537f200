#!/usr/bin/env bash
# AsymLoRA, the paper preset: shared A, N=3 routed B heads on the MLP (one router per MLP block), plain LoRA on
# attention; r=32, alpha=64, hydra balance loss 0.05, biased routers, lr 2e-4, projector lr 2e-5, 1 epoch, ZeRO-3,
# from Vicuna-7B + the stage-1 projector with LLaVA-1.5's LoRA recipe around it (global batch 128, pad).
# NUM_TASKS=-1 gives one B head per data task instead (paper Eq. 2; use NUM_EXPERTS=1). See scripts/finetune.sh.
#
# PRESET=authors: the AsymLoRA authors' released MLLM-HydraLoRA script (HydraLoRA repository, MLLM_HydraLoRA.sh)
# instead: from the finished llava-v1.5-7b (an original LLaVA checkpoint, projector included), one GPU without
# DeepSpeed, per-device batch 1 x accumulation 2, `resize` images, tf32 off, 2 dataloader workers, a checkpoint every
# 1000 steps with one kept; the adapter settings are the preset's. With MODEL=tiny only the model (and its demo data)
# changes. docs/paper.md sets the three recipes side by side.
export SCHEME=asymlora
export NUM_EXPERTS=${NUM_EXPERTS:-3} ROUTER_SCOPE=${ROUTER_SCOPE:-mlp_block} BALANCE_COEF=${BALANCE_COEF:-0.05}
export BALANCE_LOSS=${BALANCE_LOSS:-hydra} ROUTER_BIAS=${ROUTER_BIAS:-True}
export MIXTURE_TARGETS=${MIXTURE_TARGETS:-gate_proj,up_proj,down_proj}
case "${PRESET:=paper}" in
    paper)
        if [ "${MODEL:-}" != "tiny" ]; then
            export R=${R:-32} ALPHA=${ALPHA:-64} LR=${LR:-2e-4} PROJECTOR_LR=${PROJECTOR_LR:-2e-5}
        fi ;;
    authors)
        export MODEL=${MODEL:-./checkpoints/llava-v1.5-7b}
        if [ "$MODEL" != "tiny" ]; then
            export VISION_TOWER=${VISION_TOWER-./checkpoints/clip-vit-large-patch14-336}
            export DATA=${DATA:-./playground/data/llava_v1_5_mix665k.json} IMAGE_FOLDER=${IMAGE_FOLDER:-./playground/data}
            export OUTPUT=${OUTPUT:-./checkpoints/llava-v1.5-7b-asymlora-authors}
        fi
        export PROJECTOR=${PROJECTOR-} DEEPSPEED=${DEEPSPEED-}  # the checkpoint brings its projector; no DeepSpeed
        export R=${R:-32} ALPHA=${ALPHA:-64} DROPOUT=${DROPOUT:-0.05} LR=${LR:-2e-4} PROJECTOR_LR=${PROJECTOR_LR:-2e-5}
        export NUM_GPUS=${NUM_GPUS:-1} BATCH=${BATCH:-1} GRAD_ACCUM=${GRAD_ACCUM:-2} GLOBAL_BATCH=${GLOBAL_BATCH:-2}
        export EPOCHS=${EPOCHS:-1} WARMUP=${WARMUP:-0.03} MAX_LEN=${MAX_LEN:-2048} GRAD_CKPT=${GRAD_CKPT:-True}
        export PRECISION=${PRECISION:-bf16} TF32=${TF32:-False} ASPECT=${ASPECT:-resize} VERSION=${VERSION:-v1}
        export GROUP_BY_LENGTH=${GROUP_BY_LENGTH:-True} WEIGHT_DECAY=${WEIGHT_DECAY:-0.} WORKERS=${WORKERS:-2}
        export SAVE_STEPS=${SAVE_STEPS:-1000} SAVE_TOTAL_LIMIT=${SAVE_TOTAL_LIMIT:-1} LOGGING_STEPS=${LOGGING_STEPS:-1}
        ;;
    *) echo "error: PRESET must be paper or authors, got '$PRESET'" >&2; exit 2 ;;
esac
export PRESET
exec bash "$(dirname "$0")/finetune.sh"
