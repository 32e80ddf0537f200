#!/usr/bin/env bash
# One of the AsymLoRA paper's tables, end to end:  bash scripts/paper/table.sh 1|2|3|4
#   data   python -m llava.data.recipes (Tables 1 and 4 multidomain, 2 conversation58k, 3 mix665k) from the
#          downloads in RAW; the per-task subsets the single-task runs need (llava.data.task_subset)
#   train  scripts/finetune_<scheme>.sh for each of SCHEMES on that data (rank 32 / alpha 64 for every scheme, the
#          paper's setting), into WORK/checkpoints/<scheme>. By default as the authors ran it: from the finished
#          llava-v1.5-7b with their run settings (PRESET=authors); START=vicuna trains LLaVA-1.5's stage 2 instead
#          (Vicuna-7B + the stage-1 projector), PRESET=paper LLaVA-1.5's LoRA run settings.
#          lora_<name>: a single LoRA on the tasks SINGLE (or EXPERTS) names <name> (Table 1's VQA-only, Gen-only
#          rows); moe_lora_experts: the paper's MoE-LoRA baseline, one LoRA per data set of EXPERTS (N=3, the
#          paper's: VQA, LLaVA-15k, VQG) combined as the experts of one MoE (llava.commands.combine_experts) and its
#          routers trained alone on the whole data. Tables 1 and 4 share one WORK (same data): a training or an
#          evaluation one table made is the other's too, and each report lists its own table's rows only.
#   eval   scripts/eval/<bench>.sh for each of BENCHMARKS (MM-Vet only with a judge: OPENAI_BASE_URL and
#          OPENAI_API_KEY; else marked pending), scores under WORK/eval/<name>/; VizWiz is scored on val and, when
#          EVAL_ROOT holds test.json, its test-dev answers are written in EvalAI's upload format too
#   report python -m llava.eval.report --table N: the paper's rows, ours and the differences, WORK/report/
# Every stage whose output is complete is skipped, so a re-run after a crash continues where it stopped (a training
# killed part-way resumes from its newest complete checkpoint). A failing stage stops the pipeline with its name and
# log (WORK/logs/). DRY_RUN=1 prints every command, what data or weights are missing and the GPU-hours estimate.
# Knobs: RAW (./playground/data), WORK (./runs/paper/tableN; tables 1 and 4: ./runs/paper/multidomain), SCHEMES (per
# table, below), SINGLE ("vqa=vqa gen=llava,vqg": name=tasks of Table 1's single-task LoRAs), EXPERTS ("vqa=vqa
# llava=llava vqg=vqg": the LoRA experts of moe_lora_experts), BENCHMARKS ("mme gqa textvqa vizwiz mmvet"), EVAL_ROOT,
# START (llava | vicuna), PRESET (authors | paper), NUM_GPUS (per node; also the evaluation's NUM_CHUNKS), NNODES,
# GPU (a100|h100|h200, for the estimate), RECIPE_ARGS (e.g. mix665k's --tasks '...'), and everything
# scripts/finetune.sh reads (MODEL, VISION_TOWER, PROJECTOR, DEEPSPEED, EXTRA_ARGS...).
set -euo pipefail
cd "$(dirname "$0")/../.."

TABLE=${1:-}
case "$TABLE" in
    1) RECIPE=multidomain DEFAULT_SCHEMES="lora_vqa lora_gen lora moe_lora_experts asymlora" ;;
    2) RECIPE=conversation58k DEFAULT_SCHEMES="lora moe_lora asymlora" ;;
    3) RECIPE=mix665k DEFAULT_SCHEMES="lora moe_lora asymlora" ;;
    4) RECIPE=multidomain DEFAULT_SCHEMES="lora moe_lora_experts moe_lora asymlora" ;;
    *) echo "usage: bash scripts/paper/table.sh 1|2|3|4   (Table 1: VQA vs Gen vs both, 2: Conversation-58k, 3: mix665k, 4: VQA + LLaVA-15k + VQG)" >&2
       exit 2 ;;
esac
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
# asked once here rather than by every training script (each would import torch to ask); torch only where a GPU
# device node exists (NVIDIA's, ROCm's, WSL2's), as in scripts/finetune.sh
if [ -z "${HAS_CUDA:-}" ]; then
    HAS_CUDA=0
    if [ -e /dev/nvidiactl ] || [ -e /dev/kfd ] || [ -e /dev/dxg ]; then
        HAS_CUDA=$("$PYTHON" -c "import torch; print(int(torch.cuda.is_available()))")
    fi
fi
export HAS_CUDA
RAW=${RAW:-./playground/data}
START=${START:-llava}
export PRESET=${PRESET:-authors}
case "$START" in
    llava)   # the authors' starting point: the finished LLaVA-1.5 (its own projector)
        export MODEL=${MODEL:-./checkpoints/llava-v1.5-7b} VISION_TOWER=${VISION_TOWER-./checkpoints/clip-vit-large-patch14-336}
        export PROJECTOR=${PROJECTOR-}
        START_LINE="llava-v1.5-7b ($MODEL), as the authors' script" ;;
    vicuna)  # LLaVA-1.5's stage 2: Vicuna + the stage-1 projector
        export MODEL=${MODEL:-./checkpoints/vicuna-7b-v1.5} VISION_TOWER=${VISION_TOWER-./checkpoints/clip-vit-large-patch14-336}
        export PROJECTOR=${PROJECTOR-./checkpoints/llava-v1.5-7b-pretrain/mm_projector.bin}
        START_LINE="Vicuna-7B + the stage-1 projector ($MODEL, $PROJECTOR), LLaVA-1.5's stage 2" ;;
    *) echo "error: START must be llava (llava-v1.5-7b, the authors') or vicuna (LLaVA-1.5's stage 2), got '$START'" >&2; exit 2 ;;
esac
case "$PRESET" in
    authors) SETTINGS_LINE="the authors' run settings (PRESET=authors)"; SUFFIX="" ;;
    paper) SETTINGS_LINE="LLaVA-1.5's LoRA run settings (PRESET=paper)"; SUFFIX="-paper" ;;
    *) echo "error: PRESET must be authors or paper, got '$PRESET'" >&2; exit 2 ;;
esac
[ "$START" = "llava" ] || SUFFIX="$SUFFIX-$START"
case "$TABLE" in 1|4) DEFAULT_WORK=./runs/paper/multidomain$SUFFIX ;; *) DEFAULT_WORK=./runs/paper/table$TABLE$SUFFIX ;; esac
WORK=${WORK:-$DEFAULT_WORK}
SCHEMES=${SCHEMES:-$DEFAULT_SCHEMES}
SCHEMES=${SCHEMES//,/ }
SINGLE=${SINGLE:-vqa=vqa gen=llava,vqg}
EXPERTS=${EXPERTS:-vqa=vqa llava=llava vqg=vqg}
BENCHMARKS=${BENCHMARKS:-mme gqa textvqa vizwiz mmvet}
BENCHMARKS=${BENCHMARKS//,/ }
EVAL_ROOT=${EVAL_ROOT:-./playground/data/eval}
export NUM_GPUS=${NUM_GPUS:-1} NNODES=${NNODES:-1}
GPU=${GPU:-h100}
DRY_RUN=${DRY_RUN:-0}
DATA_DIR=$WORK/data
[ "$DRY_RUN" = "1" ] || mkdir -p "$WORK/logs"

say() { echo "[table $TABLE] $*"; }
say "start: $START_LINE; $SETTINGS_LINE"

# run_stage NAME LOG CMD...: run one stage with its output in LOG; on failure stop, naming the stage and the log.
run_stage() {
    local name=$1 log=$2
    shift 2
    if [ "$DRY_RUN" = "1" ]; then
        say "would run $name:"
        printf '   '
        printf ' %q' "$@"
        printf '\n'
        return 0
    fi
    say "running $name (log: $log)"
    local code=0
    "$@" > "$log" 2>&1 || code=$?
    if [ "$code" != "0" ]; then
        tail -n 15 "$log" >&2 || true
        echo "error: stage '$name' failed (exit $code); log: $log" >&2
        exit 1
    fi
}

raw_inputs() {  # the downloads the recipe reads, relative to RAW
    case "$RECIPE" in
        conversation58k) echo "instruct/conversation_58k.json coco" ;;
        mix665k) echo "llava_v1_5_mix665k.json coco gqa ocr_vqa textvqa vg" ;;
        multidomain) echo "vqav2/v2_OpenEnded_mscoco_train2014_questions.json vqav2/v2_mscoco_train2014_annotations.json instruct/llava_instruct_150k.json vqg coco" ;;
    esac
}

benchmark_input() {  # what scripts/eval/<bench>.sh reads, relative to EVAL_ROOT
    case "$1" in
        mme) echo "MME/MME_Benchmark_release_version" ;;
        gqa) echo "gqa/data/testdev_balanced_questions.json" ;;
        textvqa) echo "textvqa/TextVQA_0.5.1_val.json" ;;
        vizwiz) echo "vizwiz/val.json" ;;
        mmvet) echo "mm-vet/mm-vet.json" ;;
        *) echo "error: unknown benchmark '$1' (mme gqa textvqa vizwiz mmvet)" >&2; exit 2 ;;
    esac
}

# ---- data
if [ -f "$DATA_DIR/manifest.json" ]; then
    say "data: done ($DATA_DIR/manifest.json)"
else
    if [ "$DRY_RUN" = "1" ]; then
        for input in $(raw_inputs); do
            [ -e "$RAW/$input" ] || say "missing: $RAW/$input (download it there, or set RAW)"
        done
    fi
    # shellcheck disable=SC2086
    run_stage "data $RECIPE" "$WORK/logs/data.log" "$PYTHON" -m llava.data.recipes "$RECIPE" --raw "$RAW" \
        --out "$DATA_DIR" --overwrite ${RECIPE_ARGS:-}
fi

# ---- train every scheme (on every node), then evaluate (on the first node only)
expert_tasks() {  # the tasks of single-task LoRA NAME in SINGLE or EXPERTS ("vqa=vqa gen=llava,vqg"), or nothing
    local pair
    for pair in $SINGLE $EXPERTS; do [ "${pair%%=*}" = "$1" ] && { echo "${pair#*=}"; return 0; }; done
    return 0
}
for pair in $SINGLE; do  # one name, one task list: lora_<name> is trained once for both
    for other in $EXPERTS; do
        if [ "${pair%%=*}" = "${other%%=*}" ] && [ "$pair" != "$other" ]; then
            echo "error: lora_${pair%%=*} is $pair in SINGLE but $other in EXPERTS" >&2; exit 2
        fi
    done
done
UNITS=()  # what trains, in order: single-task LoRAs before the MoE that combines them
add_unit() { case " ${UNITS[*]-} " in *" $1 "*) ;; *) UNITS+=("$1") ;; esac; }
for scheme in $SCHEMES; do
    case "$scheme" in
        moe_lora_experts)
            [ "$RECIPE" = "multidomain" ] || [ -n "${RECIPE_ARGS:-}" ] || {
                echo "error: moe_lora_experts combines LoRAs trained on separate tasks; Table $TABLE's data has one task (use Tables 1 and 4)" >&2; exit 2; }
            for pair in $EXPERTS; do add_unit "lora_${pair%%=*}"; done
            add_unit moe_lora_experts ;;
        lora_*)
            [ -n "$(expert_tasks "${scheme#lora_}")" ] || {
                echo "error: $scheme: no '${scheme#lora_}' in SINGLE=\"$SINGLE\" or EXPERTS=\"$EXPERTS\" (name=task,task ...)" >&2; exit 2; }
            add_unit "$scheme" ;;
        *)  [ -f "scripts/finetune_$scheme.sh" ] || { echo "error: no scripts/finetune_$scheme.sh (SCHEMES=$SCHEMES)" >&2; exit 2; }
            add_unit "$scheme" ;;
    esac
done
for bench in $BENCHMARKS; do benchmark_input "$bench" > /dev/null; done
say "rows: $("$PYTHON" -m llava.eval.report --table "$TABLE" --rows "$(echo "$SCHEMES" | tr ' ' ',')")"

# the per-task subsets of the data that single-task LoRAs train on
for unit in "${UNITS[@]}"; do
    case "$unit" in lora_*) ;; *) continue ;; esac
    name=${unit#lora_}
    subset=$DATA_DIR/task-$name.json
    if [ -f "$subset" ]; then
        say "data $name: done ($subset)"
    else
        run_stage "data $name" "$WORK/logs/data-$name.log" "$PYTHON" -m llava.data.task_subset \
            --data "$DATA_DIR/train.json" --tasks "$(expert_tasks "$name")" --out "$subset"
    fi
done

# train_unit UNIT SCRIPT DATA EXTRA: one training run into WORK/checkpoints/UNIT (skipped when done, resumed when cut)
train_unit() {
    local unit=$1 script=$2 data=$3 extra=$4 ckpt=$WORK/checkpoints/$1 resume=""
    if [ -f "$ckpt/trainer_state.json" ] && [ -f "$ckpt/llava_adapters.safetensors" ]; then
        say "train $unit: done ($ckpt)"
        return 0
    fi
    if compgen -G "$ckpt/checkpoint-*/trainer_state.json" > /dev/null; then
        resume="--resume_from_checkpoint last"
        say "train $unit: resuming from the newest complete checkpoint in $ckpt"
    elif compgen -G "$ckpt/checkpoint-*" > /dev/null; then
        resume="--overwrite_output_dir True"
        say "train $unit: no complete checkpoint in $ckpt; starting over"
    fi
    if [ "$DRY_RUN" = "1" ]; then
        say "would run train $unit:"
        local out
        out=$(DATA=$data IMAGE_FOLDER=$RAW OUTPUT=$ckpt R=${R:-32} ALPHA=${ALPHA:-64} \
            EXTRA_ARGS="${EXTRA_ARGS:-} $extra $resume" DRY_RUN=1 bash "scripts/$script" 2>&1)
        # the run's own global batch (processes and accumulation included), for the step count of the estimate
        RUN_GLOBAL_BATCH=$(sed -n 's/.*; global batch \([0-9]*\) = .*/\1/p' <<< "$out" | head -n 1)
        sed -e 's/^command: /    /' -e 's/^missing: /    missing: /' -e 's/^llava-asymlora: note: /    note: /' <<< "$out" \
            | grep -v '^llava-asymlora: '
    else
        run_stage "train $unit" "$WORK/logs/train-$unit.log" env DATA="$data" IMAGE_FOLDER="$RAW" OUTPUT="$ckpt" \
            R="${R:-32}" ALPHA="${ALPHA:-64}" EXTRA_ARGS="${EXTRA_ARGS:-} $extra $resume" bash "scripts/$script"
    fi
}

for unit in "${UNITS[@]}"; do
    case "$unit" in
        lora_*) train_unit "$unit" finetune_lora.sh "$DATA_DIR/task-${unit#lora_}.json" "" ;;
        moe_lora_experts)
            combined=$WORK/checkpoints/moe_lora_experts-combined
            experts=""
            for pair in $EXPERTS; do experts="$experts${experts:+,}$WORK/checkpoints/lora_${pair%%=*}"; done
            if [ -f "$combined/llava_adapters.safetensors" ]; then
                say "combine moe_lora_experts: done ($combined)"
            else
                run_stage "combine moe_lora_experts" "$WORK/logs/combine-moe_lora_experts.log" "$PYTHON" \
                    -m llava.commands.combine_experts --experts "$experts" --out "$combined"
            fi
            # the experts stay as trained; the routers learn to combine them on the whole (shuffled) data
            train_unit moe_lora_experts finetune_moe_lora.sh "$DATA_DIR/train.json" \
                "--init_adapters $combined --train_routers_only True --freeze_mm_mlp_adapter True" ;;
        *) train_unit "$unit" "finetune_$unit.sh" "$DATA_DIR/train.json" "" ;;
    esac
done
if [ "${NODE_RANK:-0}" != "0" ]; then
    say "node $NODE_RANK: training done; the first node evaluates"
    exit 0
fi
RUN_NAMES=""  # this table's runs, for its report
judge=0
[ -n "${OPENAI_BASE_URL:-}" ] && [ -n "${OPENAI_API_KEY:-}" ] && judge=1
vizwiz_test=0
[ -f "$EVAL_ROOT/vizwiz/test.json" ] && vizwiz_test=1
for scheme in $SCHEMES; do
    ckpt=$WORK/checkpoints/$scheme
    name=${WORK%/}
    name=${name##*/}-$scheme  # one evaluation per training, whichever table asked for it
    RUN_NAMES="$RUN_NAMES${RUN_NAMES:+,}$name"
    pending=()
    upload=$EVAL_ROOT/vizwiz/answers_upload/$name.json
    if [[ " $BENCHMARKS " == *" vizwiz "* ]]; then
        if [ "$vizwiz_test" = "0" ]; then
            say "eval $scheme vizwiz test-dev: skipped ($EVAL_ROOT/vizwiz/test.json not there; val is scored locally)"
        elif [ -f "$upload" ]; then
            say "eval $scheme vizwiz test-dev: done ($upload)"
        else
            run_stage "eval $scheme vizwiz test-dev" "$WORK/logs/eval-$scheme-vizwiz-test.log" env SPLIT=test \
                EVAL_ROOT="$EVAL_ROOT" RUNS_DIR="$WORK/eval" ANSWERS_DIR="$WORK/answers" NUM_CHUNKS="$NUM_GPUS" \
                PYTHON="$PYTHON" bash scripts/eval/vizwiz.sh "$ckpt" "$name"
        fi
    fi
    for bench in $BENCHMARKS; do
        input=$(benchmark_input "$bench")
        if [ -f "$WORK/eval/$name/$bench.json" ]; then
            say "eval $scheme $bench: done ($WORK/eval/$name/$bench.json)"
            continue
        fi
        if [ "$bench" = "mmvet" ] && [ "$judge" = "0" ]; then
            say "eval $scheme mmvet: pending (no judge: set OPENAI_BASE_URL and OPENAI_API_KEY)"
            pending+=(mmvet)
            continue
        fi
        [ "$DRY_RUN" = "1" ] && [ ! -e "$EVAL_ROOT/$input" ] && say "missing: $EVAL_ROOT/$input (LLaVA's Evaluation.md layout)"
        run_stage "eval $scheme $bench" "$WORK/logs/eval-$scheme-$bench.log" env EVAL_ROOT="$EVAL_ROOT" \
            RUNS_DIR="$WORK/eval" ANSWERS_DIR="$WORK/answers" NUM_CHUNKS="$NUM_GPUS" PYTHON="$PYTHON" bash "scripts/eval/$bench.sh" "$ckpt" "$name"
    done
    if [ "$DRY_RUN" != "1" ]; then
        mkdir -p "$WORK/eval/$name"
        [ -f "$upload" ] || upload=""
        "$PYTHON" -c 'import json, sys
info = dict(zip(["scheme", "table", "checkpoint", "start", "model", "preset", "vizwiz_upload"], sys.argv[1:8]))
print(json.dumps({**info, "table": int(info["table"]), "pending": sys.argv[8:]}))' \
            "$scheme" "$TABLE" "$ckpt" "$START" "$MODEL" "$PRESET" "$upload" "${pending[@]+"${pending[@]}"}" \
            > "$WORK/eval/$name/run.json"
    fi
done

# What the report's notes will say of every row, known before anything runs: how this run differs from the paper's.
dry_run_notes() {
    say "notes (the report repeats them per row, with what the runs measured):"
    say "  start: $START_LINE; $SETTINGS_LINE"
    if [ "$PRESET" = "authors" ]; then
        local adapters="bf16, updated with no fp32 copy (the authors' plain-python run; ADAPTER_DTYPE=fp32 for fp32 masters)"
        [ "${ADAPTER_DTYPE:-base}" = "base" ] || adapters="ADAPTER_DTYPE=$ADAPTER_DTYPE (the authors': bf16 with no fp32 copy)"
        say "  adapters and routers: $adapters"
        [ "${RUN_GLOBAL_BATCH:-2}" = "2" ] || say "  global batch $RUN_GLOBAL_BATCH, the authors' 2 (one GPU, 1 x 2 accumulation): $((RUN_GLOBAL_BATCH / 2))x fewer optimizer steps, learning rate unchanged"
    else
        say "  adapters: fp32 masters (DeepSpeed's, or ours without it), computed in bf16"
    fi
    say "  global batch ${RUN_GLOBAL_BATCH:-?} per optimizer step (the estimate's step count uses it)"
    say "  evaluation: LLaVA-1.5's question files and prompts, fp16 on the GPU (DTYPE=bf16 to change), batch ${BATCH:-8} (answers equal one at a time)"
    case " $BENCHMARKS " in *" vizwiz "*)
        say "  VizWiz: val scored here; test-dev answers for EvalAI only when $EVAL_ROOT/vizwiz/test.json is there (the paper's columns are test-dev's)" ;;
    esac
    case " $BENCHMARKS " in *" mmvet "*)
        local judge_model=${MMVET_JUDGE_MODEL:-}
        [ -n "$judge_model" ] || judge_model="the judge's default model"
        say "  MM-Vet judge: $judge_model (the paper: GPT-4 through MM-Vet's grader)" ;;
    esac
    case " ${UNITS[*]} " in *" moe_lora_experts "*)
        say "  moe_lora_experts: $(wc -w <<< "$EXPERTS") LoRA experts, one per data set ($EXPERTS); the paper: N=3" ;;
    esac
}

# ---- report (always: cheap, and it reflects whatever is scored so far)
if [ "$DRY_RUN" = "1" ]; then
    run_stage "report" "$WORK/logs/report.log" "$PYTHON" -m llava.eval.report --table "$TABLE" --runs "$WORK/eval" \
        --out "$WORK/report" --select "$RUN_NAMES"
    data_arg=(--recipe "$RECIPE")
    [ -f "$DATA_DIR/train.json" ] && data_arg=(--data "$DATA_DIR/train.json")
    batch=${RUN_GLOBAL_BATCH:-128}
    say "estimate (python -m llava.train.plan ${data_arg[*]} --gpu $GPU --gpus $((NUM_GPUS * NNODES)) --global-batch $batch):"
    "$PYTHON" -m llava.train.plan --r "${R:-32}" "${data_arg[@]}" --gpu "$GPU" --gpus $((NUM_GPUS * NNODES)) \
        --global-batch "$batch" \
        --schemes "$(printf '%s\n' "${UNITS[@]}" | sed -e 's/^lora_.*/lora/' -e 's/^moe_lora_experts$/moe_lora/' | paste -sd,)" --benchmarks "$(echo "$BENCHMARKS" | tr ' ' ',')" 2>/dev/null \
        | sed -n '/^time on/,$p'
    case " ${UNITS[*]} " in *" lora_"*|*" moe_lora_experts "*)
        say "the estimate counts one training per adapter kind: add about one lora training for the single-task" \
            "LoRAs (their tasks split the data) and one moe_lora training for moe_lora_experts' router run" ;;
    esac
    dry_run_notes
    exit 0
fi
run_stage "report" "$WORK/logs/report.log" "$PYTHON" -m llava.eval.report --table "$TABLE" --runs "$WORK/eval" \
    --out "$WORK/report" --select "$RUN_NAMES"
cat "$WORK/report/table$TABLE.md"
say "done: $WORK/report/table$TABLE.md"
