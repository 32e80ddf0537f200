#!/usr/bin/env bash
# Shared body of scripts/finetune_*.sh. Every knob is an environment variable; defaults are LLaVA-1.5-7B stage 2.
# MODEL=tiny switches every default to the embedded tiny preset on CPU (demo data, no DeepSpeed).
# An empty value means "none": VISION_TOWER= (a llava-hf MODEL has its own), PROJECTOR= (projector from scratch),
# DEEPSPEED= (no DeepSpeed). GLOBAL_BATCH (LLaVA's 128; MODEL=tiny: BATCH x all processes, no accumulation) is
# kept whatever NUM_GPUS: the script sets GRAD_ACCUM = GLOBAL_BATCH / (BATCH x NUM_GPUS x NNODES) unless GRAD_ACCUM
# is given. NUM_GPUS is processes per node. Several nodes (docs/multinode.md) run the same command on every node:
# static (NNODES, NODE_RANK=0..NNODES-1, MASTER_ADDR/MASTER_PORT of node 0), c10d rendezvous (NNODES,
# RDZV_ENDPOINT=host:port, RDZV_ID), or DeepSpeed's launcher (HOSTFILE; NO_SSH=1 with NODE_RANK starts each node by
# hand). DIST_TIMEOUT (s) bounds how long the rest of
# a job waits for a lost process; MAX_RESTARTS=K restarts the workers, which resume from the newest complete
# checkpoint; SAVE_ON_EACH_NODE=1 for node-local disks. DRY_RUN=1 prints the command it would run (and any missing
# path) and exits 0. CONFIG=FILE.yaml takes the run's settings from a file instead (below).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}

missing() {
    if [ "${DRY_RUN:-0}" = "1" ]; then
        echo "missing: $1: $2" >&2
        return 0
    fi
    echo "error: $1 not found: $2" >&2
    exit 2
}
read_nodes() {  # NUM_GPUS processes on each of NNODES nodes, or what a DeepSpeed HOSTFILE says
    NUM_GPUS=${NUM_GPUS:-1}
    NNODES=${NNODES:-1}
    if [ -n "${HOSTFILE:-}" ]; then  # DeepSpeed's hostfile: "host slots=N" per node; N processes there
        [ -f "$HOSTFILE" ] || missing "HOSTFILE=$HOSTFILE" "a DeepSpeed hostfile, one 'host slots=N' line per node"
        if [ -f "$HOSTFILE" ]; then
            read -r NNODES NUM_GPUS <<< "$(awk '!/^[[:space:]]*(#|$)/ { n++; split($2, kv, "="); s = kv[2] }
                                                END { print n, s }' "$HOSTFILE")"
        fi
    fi
    case "$NNODES" in ''|*[!0-9]*) echo "error: NNODES must be a number of nodes, got '$NNODES'" >&2; exit 2 ;; esac
}
launch_training() {  # runs llava.train.train with "${args[@]}" under the launcher the node layout needs
    if [ -n "${HOSTFILE:-}" ]; then  # DeepSpeed's launcher: from node 0 over ssh (pdsh), or NO_SSH=1 on every node
        launch=("$PYTHON" -m deepspeed.launcher.runner --hostfile "$HOSTFILE" --master_addr "${MASTER_ADDR:-127.0.0.1}"
                --master_port "${MASTER_PORT:-29511}" --no_local_rank)
        [ "${NO_SSH:-0}" = "1" ] && launch+=(--no_ssh --node_rank "${NODE_RANK:-0}")
        launch+=(--module llava.train.train "${args[@]}")
    elif [ "$NUM_GPUS" -gt 1 ] || [ "$NNODES" -gt 1 ] || [ -n "$DEEPSPEED" ] || [ "${MAX_RESTARTS:-0}" -gt 0 ]; then
        launch=("$PYTHON" -m torch.distributed.run --nproc_per_node "$NUM_GPUS" --nnodes "$NNODES"
                --max_restarts "${MAX_RESTARTS:-0}")
        if [ -n "${RDZV_ENDPOINT:-}" ]; then  # every node the same command; ranks assigned at the rendezvous
            launch+=(--rdzv_backend c10d --rdzv_endpoint "$RDZV_ENDPOINT" --rdzv_id "${RDZV_ID:-llava-asymlora}")
        else
            launch+=(--node_rank "${NODE_RANK:-0}" --master_addr "${MASTER_ADDR:-127.0.0.1}"
                     --master_port "${MASTER_PORT:-29511}")
        fi
        launch+=(-m llava.train.train "${args[@]}")
    else
        launch=("$PYTHON" -m llava.train.train "${args[@]}")
    fi
    if [ "${DRY_RUN:-0}" = "1" ]; then
        printf 'command:'
        printf ' %q' "${launch[@]}"
        printf '\n'
        exit 0
    fi
    exec "${launch[@]}"
}

# CONFIG=FILE.yaml: the run's settings come from the file (configs/train/*.yaml, or a run's OUTPUT/run_config.yaml);
# EXTRA_ARGS override it; OUTPUT, DEVICE=cpu and the node variables (NUM_GPUS, NNODES, HOSTFILE, ...) still apply;
# the other knobs above (SCHEME, LR, ...) are not read.
if [ -n "${CONFIG:-}" ]; then
    [ -f "$CONFIG" ] || { echo "error: CONFIG=$CONFIG not found: a run config (configs/train/*.yaml)" >&2; exit 2; }
    read_nodes
    DEEPSPEED=$("$PYTHON" -m llava.train.config_file get "$CONFIG" deepspeed) || exit 2
    args=(--config "$CONFIG")
    [ -n "${OUTPUT:-}" ] && args+=(--output_dir "$OUTPUT")
    [ "${DEVICE:-}" = "cpu" ] && args+=(--use_cpu True)
    # shellcheck disable=SC2206
    args+=(${EXTRA_ARGS:-})
    echo "llava-asymlora: training with the settings of $CONFIG${EXTRA_ARGS:+ (overridden: $EXTRA_ARGS)};" \
         "$NNODES node(s) x $NUM_GPUS processes; DeepSpeed ${DEEPSPEED:-off}${OUTPUT:+; output $OUTPUT}"
    launch_training
fi
# PRESET=authors: the run settings of the AsymLoRA authors' released script (HydraLoRA repository,
# MLLM-HydraLoRA/MLLM_HydraLoRA.sh): from the finished llava-v1.5-7b (an original LLaVA checkpoint, its projector
# included), one GPU without DeepSpeed, per-device batch 1 x accumulation 2, `resize` images, tf32 off, 2 dataloader
# workers, the scheme's preset (their asymlora is ours), a checkpoint every 1000 steps with one kept,
# adapters and routers kept and updated in bf16 with no fp32 copy (their plain `python` run of LLaVA's train.py, which
# casts the LoRA layers to bf16; ADAPTER_DTYPE=fp32 for fp32 masters).
# Their global batch 2 is kept on 1 or 2 processes (accumulation 2 or 1); on more it cannot be, and the run says so.
# With MODEL=tiny only the model (and its demo data) changes. Without PRESET: LLaVA-1.5's LoRA recipe (below).
case "${PRESET:-}" in
    ""|paper) ;;
    authors)
        MODEL=${MODEL:-./checkpoints/llava-v1.5-7b}
        if [ "$MODEL" != "tiny" ]; then
            VISION_TOWER=${VISION_TOWER-./checkpoints/clip-vit-large-patch14-336}
            OUTPUT=${OUTPUT:-./checkpoints/llava-v1.5-7b-${SCHEME:-lora}-authors}
        fi
        PROJECTOR=${PROJECTOR-} DEEPSPEED=${DEEPSPEED-}
        DROPOUT=${DROPOUT:-0.05} LR=${LR:-2e-4} PROJECTOR_LR=${PROJECTOR_LR:-2e-5}
        NUM_GPUS=${NUM_GPUS:-1} BATCH=${BATCH:-1} GLOBAL_BATCH=${GLOBAL_BATCH:-2}
        EPOCHS=${EPOCHS:-1} WARMUP=${WARMUP:-0.03} MAX_LEN=${MAX_LEN:-2048} GRAD_CKPT=${GRAD_CKPT:-True}
        PRECISION=${PRECISION:-bf16} TF32=${TF32:-False} ASPECT=${ASPECT:-resize} VERSION=${VERSION:-v1}
        GROUP_BY_LENGTH=${GROUP_BY_LENGTH:-True} WEIGHT_DECAY=${WEIGHT_DECAY:-0.} WORKERS=${WORKERS:-2}
        SAVE_STEPS=${SAVE_STEPS:-1000} SAVE_TOTAL_LIMIT=${SAVE_TOTAL_LIMIT:-1} LOGGING_STEPS=${LOGGING_STEPS:-1}
        ADAPTER_DTYPE=${ADAPTER_DTYPE:-base} ;;
    *) echo "error: PRESET must be paper or authors, got '$PRESET'" >&2; exit 2 ;;
esac
MODEL=${MODEL:-./checkpoints/vicuna-7b-v1.5}
SCHEME=${SCHEME:-lora}
# The scheme's preset (rank, alpha, experts, router placement, balance): llava/adapters/presets.py, its one home; a
# variable set here (R=8, NUM_EXPERTS=4, ...) wins over it. MODEL=tiny takes the tiny sizes, except under
# PRESET=authors, which changes only the model and data.
size=$( [ "$MODEL" = "tiny" ] && [ "${PRESET:-}" != "authors" ] && echo tiny || echo 7b )
preset=$("$PYTHON" -m llava.adapters.presets shell "$SCHEME" "$size") || exit 2
eval "$preset"

if [ "$MODEL" = "tiny" ]; then
    DATA=${DATA:-shape=playground/data/demo/train_shape.json,color=playground/data/demo/train_color.json,yesno=playground/data/demo/train_yesno.json}
    IMAGE_FOLDER=${IMAGE_FOLDER:-playground/data/demo}
    [ -f playground/data/demo/train.json ] || "$PYTHON" -m llava.kit.easy_vqa_demo --out playground/data/demo
    VISION_TOWER=${VISION_TOWER-}
    PROJECTOR=${PROJECTOR-}
    DEEPSPEED=${DEEPSPEED-}
    PRECISION=${PRECISION:-fp32}
    EPOCHS=${EPOCHS:-3}
    BATCH=${BATCH:-16}  # GLOBAL_BATCH: BATCH x processes (one optimizer step per batch) unless set
    LR=${LR:-3e-3}
    PROJECTOR_LR=${PROJECTOR_LR:-3e-3}
    MAX_LEN=${MAX_LEN:-256}
    SAVE_STEPS=${SAVE_STEPS:-100}
    LOGGING_STEPS=${LOGGING_STEPS:-20}
    GRAD_CKPT=${GRAD_CKPT:-False}
    WORKERS=${WORKERS:-0}
    OUTPUT=${OUTPUT:-./checkpoints/tiny-$SCHEME}
    DROPOUT=${DROPOUT:-0.0}
    WARMUP=${WARMUP:-0.03}
else
    DATA=${DATA:-./playground/data/llava_v1_5_mix665k.json}
    IMAGE_FOLDER=${IMAGE_FOLDER:-./playground/data}
    # a MODEL directory whose config has a vision_config holds its own tower and projector (llava-hf, or another
    # family: LLaVA-NeXT, Qwen2.5-VL, Idefics3, Gemma 3, ...); a language model gets LLaVA-1.5's parts. MAX_LEN: what
    # the family's largest image needs (llava/model/family_defaults.py; LLaVA-1.5's 2048 otherwise)
    # (a command substitution, not `< <(...)`: bash reaps it, where a process substitution's child would be left to
    # the launcher this shell becomes by exec)
    family=$("$PYTHON" -m llava.model.family_defaults "$MODEL") || exit 2
    read -r own_tower family_max_len <<< "$family"
    if [ "$own_tower" = "1" ]; then
        VISION_TOWER=${VISION_TOWER-}
        PROJECTOR=${PROJECTOR-}
    fi
    VISION_TOWER=${VISION_TOWER-./checkpoints/clip-vit-large-patch14-336}
    PROJECTOR=${PROJECTOR-./checkpoints/llava-v1.5-7b-pretrain/mm_projector.bin}
    # ZeRO-2: the base is frozen, so ZeRO-3 would gather all of it at every use to save only its replicas; ZeRO-2
    # fits 80 GB GPUs at the paper's batch (python -m llava.train.plan --gpus 8 says which for your GPUs)
    DEEPSPEED=${DEEPSPEED-./configs/deepspeed/zero2.json}
    # PRECISION: bf16, LLaVA's; on a CPU (DEVICE=cpu, below) only where it runs bf16 natively, else fp32
    EPOCHS=${EPOCHS:-1}
    BATCH=${BATCH:-16}
    GLOBAL_BATCH=${GLOBAL_BATCH:-128}
    MAX_LEN=${MAX_LEN:-$family_max_len}
    SAVE_STEPS=${SAVE_STEPS:-500}
    LOGGING_STEPS=${LOGGING_STEPS:-1}
    GRAD_CKPT=${GRAD_CKPT:-True}
    WORKERS=${WORKERS:-4}
    OUTPUT=${OUTPUT:-./checkpoints/llava-v1.5-7b-$SCHEME}
    LR=${LR:-2e-4}
    PROJECTOR_LR=${PROJECTOR_LR:-2e-5}
    DROPOUT=${DROPOUT:-0.05}
    WARMUP=${WARMUP:-0.03}
fi
if [ "$MODEL" != "tiny" ]; then  # fail here, not inside a launcher's traceback
    if [[ "$MODEL" == *.gguf ]]; then
        [ -f "$MODEL" ] || missing "MODEL=$MODEL" "a .gguf language model file"
    else
        [ -d "$MODEL" ] || missing "MODEL=$MODEL" "download Vicuna-7B-v1.5 (or a llava-hf / original LLaVA checkpoint) there, or set MODEL"
    fi
    [ -z "$VISION_TOWER" ] || [ -d "$VISION_TOWER" ] || missing "VISION_TOWER=$VISION_TOWER" "download openai/clip-vit-large-patch14-336 there, or set VISION_TOWER ('' for a llava-hf MODEL)"
    [ -z "$PROJECTOR" ] || [ -f "$PROJECTOR" ] || missing "PROJECTOR=$PROJECTOR" "the stage-1 mm_projector.bin; set PROJECTOR='' to start the projector from scratch"
fi
IFS=',' read -ra data_entries <<< "$DATA"
for entry in "${data_entries[@]}"; do
    [ -f "${entry#*=}" ] || missing "data file ${entry#*=}" "set DATA (a.json, or name=a.json,name=b.json)"
done
read_nodes
if [ "${PRESET:-}" = "authors" ] && [ -z "${GRAD_ACCUM:-}" ] && [ $((BATCH * NUM_GPUS * NNODES)) -gt "$GLOBAL_BATCH" ]; then
    GRAD_ACCUM=1  # the authors' global batch cannot be kept on this many processes: the smallest one, said aloud
    echo "llava-asymlora: note: PRESET=authors: GLOBAL_BATCH=$GLOBAL_BATCH (the authors': 2, one GPU, 1 per device" \
         "x 2 accumulation) cannot be kept by $BATCH per device x $NUM_GPUS processes x $NNODES nodes: global batch" \
         "$((BATCH * NUM_GPUS * NNODES)) instead of $GLOBAL_BATCH (learning rate unchanged)"
fi
if [ -z "${GRAD_ACCUM:-}" ]; then
    per_step=$((BATCH * NUM_GPUS * NNODES))
    GLOBAL_BATCH=${GLOBAL_BATCH:-$per_step}  # a preset without a recipe's global batch (tiny): no accumulation
    if [ $((GLOBAL_BATCH % per_step)) -ne 0 ]; then
        fits=""  # the largest per-device batch that does fit, to suggest
        for b in $(seq "$BATCH" -1 1); do
            if [ $((GLOBAL_BATCH % (b * NUM_GPUS * NNODES))) -eq 0 ]; then fits=$b; break; fi
        done
        echo "error: GLOBAL_BATCH=$GLOBAL_BATCH is not a multiple of BATCH=$BATCH x NUM_GPUS=$NUM_GPUS x NNODES=$NNODES;" \
             "${fits:+set BATCH=$fits, }set GLOBAL_BATCH to a multiple of $per_step, or set GRAD_ACCUM" >&2
        exit 2
    fi
    GRAD_ACCUM=$((GLOBAL_BATCH / per_step))
fi
REPORT_TO=${REPORT_TO:-none}
VERSION=${VERSION:-v1}
EXTRA_ARGS=${EXTRA_ARGS:-}
BITS=${BITS:-16}
[ "$BITS" = "16" ] || EXTRA_BITS="QLoRA ${BITS}-bit LM, "

args=(
    --model_name_or_path "$MODEL" --version "$VERSION"
    --data_path "$DATA" --image_folder "$IMAGE_FOLDER" --image_aspect_ratio "${ASPECT:-pad}"
    --group_by_modality_length "${GROUP_BY_LENGTH:-True}"
    --lora_enable True --adapter_scheme "$SCHEME" --lora_r "$R" --lora_alpha "$ALPHA" --lora_dropout "$DROPOUT"
    --mm_projector_lr "$PROJECTOR_LR" --learning_rate "$LR" --weight_decay "${WEIGHT_DECAY:-0.}" --warmup_ratio "$WARMUP"
    --lr_scheduler_type cosine --num_train_epochs "$EPOCHS" --per_device_train_batch_size "$BATCH"
    --gradient_accumulation_steps "$GRAD_ACCUM" --model_max_length "$MAX_LEN" --activation_checkpointing "$GRAD_CKPT"
    --save_strategy steps --save_steps "$SAVE_STEPS" --save_total_limit "${SAVE_TOTAL_LIMIT:-2}" --logging_steps "$LOGGING_STEPS"
    --dataloader_num_workers "$WORKERS" --lazy_preprocess True --report_to "$REPORT_TO" --output_dir "$OUTPUT"
    --bits "$BITS"
)
# the other adapter settings: passed where the preset or the user set them, else the training CLI's defaults
for knob in NUM_EXPERTS:num_experts NUM_TASKS:num_tasks ROUTER:router TOP_K:top_k ROUTER_SCOPE:router_scope \
            MIXTURE_TARGETS:mixture_targets BALANCE_COEF:balance_coef BALANCE_LOSS:balance_loss \
            ROUTER_BIAS:router_bias ADAPTER_DTYPE:adapter_dtype; do
    name=${knob%%:*}
    if [ -n "${!name:-}" ]; then args+=("--${knob#*:}" "${!name}"); fi
done
[ -n "$VISION_TOWER" ] && args+=(--vision_tower "$VISION_TOWER")
[ -n "$PROJECTOR" ] && args+=(--pretrain_mm_mlp_adapter "$PROJECTOR")
[ -n "$DEEPSPEED" ] && args+=(--deepspeed "$DEEPSPEED")
DIST_TIMEOUT=${DIST_TIMEOUT:-600}
args+=(--ddp_timeout "$DIST_TIMEOUT")
[ "${SAVE_ON_EACH_NODE:-0}" = "1" ] && args+=(--save_on_each_node True)
# DEVICE: cuda (the GPU recipes) or cpu, never switched silently. MODEL=tiny/small default to the CPU where this
# machine has no GPU; a GPU recipe launched here without one stops (a DeepSpeed HOSTFILE launch runs elsewhere).
# HAS_CUDA is asked of torch only where the answer matters (importing torch costs seconds): not for DEVICE=cpu, nor
# where no GPU device node exists (NVIDIA's /dev/nvidiactl, ROCm's /dev/kfd, WSL2's /dev/dxg), which torch would need.
has_cuda() {
    if [ -z "${HAS_CUDA:-}" ]; then
        HAS_CUDA=0
        if [ -e /dev/nvidiactl ] || [ -e /dev/kfd ] || [ -e /dev/dxg ]; then
            HAS_CUDA=$("$PYTHON" -c "import torch; print(int(torch.cuda.is_available()))")
        fi
    fi
    [ "$HAS_CUDA" = "1" ]
}
case "$MODEL" in
    tiny|small) [ -n "${DEVICE:-}" ] || { has_cuda && DEVICE=cuda || DEVICE=cpu; } ;;
    *) DEVICE=${DEVICE:-cuda} ;;
esac
case "$DEVICE" in
    cpu) args+=(--use_cpu True) ;;
    cuda)
        if [ -z "${HOSTFILE:-}" ] && ! has_cuda; then
            if [ "${DRY_RUN:-0}" = "1" ]; then
                echo "note: no CUDA device on this machine; the command below is for a GPU machine" >&2
            else
                echo "error: no CUDA device on this machine for a GPU run (MODEL=$MODEL); launch it on a GPU node, or set DEVICE=cpu to train on the CPU" >&2
                exit 2
            fi
        fi ;;
    *) echo "error: DEVICE must be cuda or cpu, got '$DEVICE'" >&2; exit 2 ;;
esac
if [ -z "${PRECISION:-}" ]; then
    if [ "$DEVICE" = "cpu" ]; then
        PRECISION=$("$PYTHON" -m llava.model.cpu_dtype "training on the CPU") || exit 2
    else
        PRECISION=bf16
    fi
fi
case "$PRECISION" in
    bf16) args+=(--bf16 True); [ "$DEVICE" = "cuda" ] && args+=(--tf32 "${TF32:-True}") ;;
    fp16) args+=(--fp16 True) ;;
    fp32) ;;
    *) echo "PRECISION must be bf16, fp16 or fp32" >&2; exit 2 ;;
esac
# shellcheck disable=SC2206
args+=($EXTRA_ARGS)

echo "llava-asymlora: training $SCHEME${PRESET:+ (preset $PRESET)} (r=$R, alpha=$ALPHA, experts=${NUM_EXPERTS:-1}," \
     "tasks=${NUM_TASKS:-1}) on MODEL=$MODEL, VISION_TOWER=${VISION_TOWER:-<from MODEL>}, PROJECTOR=${PROJECTOR:-<none>}," \
     "DATA=$DATA; $PRECISION, ${EXTRA_BITS:-}DeepSpeed ${DEEPSPEED:-off}; global batch" \
     "$((BATCH * NUM_GPUS * NNODES * GRAD_ACCUM)) = $BATCH per device x $NUM_GPUS processes x $NNODES nodes x" \
     "$GRAD_ACCUM accumulation; output $OUTPUT"
echo "llava-asymlora: $NNODES node(s) x $NUM_GPUS processes; launch ${HOSTFILE:+DeepSpeed hostfile $HOSTFILE}${RDZV_ENDPOINT:+c10d rendezvous at $RDZV_ENDPOINT}$( [ -n "${HOSTFILE:-}${RDZV_ENDPOINT:-}" ] || echo "static, node ${NODE_RANK:-0}, master ${MASTER_ADDR:-127.0.0.1}:${MASTER_PORT:-29511}"); DIST_TIMEOUT=${DIST_TIMEOUT}s, MAX_RESTARTS=${MAX_RESTARTS:-0}${SAVE_ON_EACH_NODE:+, SAVE_ON_EACH_NODE=$SAVE_ON_EACH_NODE}"
launch_training
