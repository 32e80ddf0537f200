#!/usr/bin/env bash
# One of the AsymLoRA paper's tables, end to end:  bash scripts/paper/table.sh 2|3|4
#   data   python -m llava.data.recipes (Table 2 conversation58k, 3 mix665k, 4 multidomain) from the downloads in RAW
#   train  scripts/finetune_<scheme>.sh for each of SCHEMES on that data (rank 32 / alpha 64 for every scheme,
#          the paper's setting), into WORK/checkpoints/<scheme>
#   eval   scripts/eval/<bench>.sh for each of BENCHMARKS (MM-Vet only with a judge: OPENAI_BASE_URL and
#          OPENAI_API_KEY; else marked pending), scores under WORK/eval/<name>/
#   report python -m llava.eval.report --table N: the paper's rows, ours and the differences, WORK/report/
# Every stage whose output is complete is skipped, so a re-run after a crash continues where it stopped (a training
# killed part-way resumes from its newest complete checkpoint). A failing stage stops the pipeline with its name and
# log (WORK/logs/). DRY_RUN=1 prints every command, what data or weights are missing and the GPU-hours estimate.
# Knobs: RAW (./playground/data), WORK (./runs/paper/tableN), SCHEMES ("lora moe_lora asymlora"), BENCHMARKS
# ("mme gqa textvqa vizwiz mmvet"), EVAL_ROOT, PRESET (authors: the authors' run settings), NUM_GPUS (per node; also
# the evaluation's NUM_CHUNKS), NNODES, GPU (a100|h100|h200, for the estimate), RECIPE_ARGS (e.g. mix665k's
# --tasks '...'), and everything scripts/finetune.sh reads (MODEL, VISION_TOWER, PROJECTOR, DEEPSPEED, EXTRA_ARGS...).
set -euo pipefail
cd "$(dirname "$0")/../.."

TABLE=${1:-}
case "$TABLE" in
    2) RECIPE=conversation58k ;;
    3) RECIPE=mix665k ;;
    4) RECIPE=multidomain ;;
    *) echo "usage: bash scripts/paper/table.sh 2|3|4   (Table 2: Conversation-58k, 3: mix665k, 4: VQA + LLaVA-15k + VQG)" >&2
       exit 2 ;;
esac
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
RAW=${RAW:-./playground/data}
WORK=${WORK:-./runs/paper/table$TABLE${PRESET:+-$PRESET}}
SCHEMES=${SCHEMES:-lora moe_lora asymlora}
SCHEMES=${SCHEMES//,/ }
BENCHMARKS=${BENCHMARKS:-mme gqa textvqa vizwiz mmvet}
BENCHMARKS=${BENCHMARKS//,/ }
EVAL_ROOT=${EVAL_ROOT:-./playground/data/eval}
export NUM_GPUS=${NUM_GPUS:-1} NNODES=${NNODES:-1}
GPU=${GPU:-h100}
DRY_RUN=${DRY_RUN:-0}
DATA_DIR=$WORK/data
[ "$DRY_RUN" = "1" ] || mkdir -p "$WORK/logs"

say() { echo "[table $TABLE] $*"; }

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
for scheme in $SCHEMES; do
    [ -f "scripts/finetune_$scheme.sh" ] || { echo "error: no scripts/finetune_$scheme.sh (SCHEMES=$SCHEMES)" >&2; exit 2; }
done
for bench in $BENCHMARKS; do benchmark_input "$bench" > /dev/null; done
for scheme in $SCHEMES; do
    ckpt=$WORK/checkpoints/$scheme
    if [ -f "$ckpt/trainer_state.json" ] && [ -f "$ckpt/adapter_model.safetensors" ]; then
        say "train $scheme: done ($ckpt)"
    else
        resume=""
        if compgen -G "$ckpt/checkpoint-*/trainer_state.json" > /dev/null; then
            resume="--resume_from_checkpoint last"
            say "train $scheme: resuming from the newest complete checkpoint in $ckpt"
        elif compgen -G "$ckpt/checkpoint-*" > /dev/null; then
            resume="--overwrite_output_dir True"
            say "train $scheme: no complete checkpoint in $ckpt; starting over"
        fi
        if [ "$DRY_RUN" = "1" ]; then
            say "would run train $scheme:"
            DATA=$DATA_DIR/train.json IMAGE_FOLDER=$RAW OUTPUT=$ckpt R=${R:-32} ALPHA=${ALPHA:-64} \
                EXTRA_ARGS="${EXTRA_ARGS:-} $resume" DRY_RUN=1 bash "scripts/finetune_$scheme.sh" 2>&1 \
                | sed -e 's/^command: /    /' -e 's/^missing: /    missing: /' | grep -v '^llava-asymlora: '
        else
            run_stage "train $scheme" "$WORK/logs/train-$scheme.log" env DATA="$DATA_DIR/train.json" \
                IMAGE_FOLDER="$RAW" OUTPUT="$ckpt" R="${R:-32}" ALPHA="${ALPHA:-64}" \
                EXTRA_ARGS="${EXTRA_ARGS:-} $resume" bash "scripts/finetune_$scheme.sh"
        fi
    fi
done
if [ "${NODE_RANK:-0}" != "0" ]; then
    say "node $NODE_RANK: training done; the first node evaluates"
    exit 0
fi
judge=0
[ -n "${OPENAI_BASE_URL:-}" ] && [ -n "${OPENAI_API_KEY:-}" ] && judge=1
for scheme in $SCHEMES; do
    ckpt=$WORK/checkpoints/$scheme
    name=t$TABLE-$scheme${PRESET:+-$PRESET}
    pending=()
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
        printf '{"scheme": "%s", "table": %s, "checkpoint": "%s", "pending": [%s]}\n' "$scheme" "$TABLE" "$ckpt" \
            "$(printf '"%s",' "${pending[@]+"${pending[@]}"}" | sed 's/,$//')" > "$WORK/eval/$name/run.json"
    fi
done

# ---- report (always: cheap, and it reflects whatever is scored so far)
if [ "$DRY_RUN" = "1" ]; then
    run_stage "report" "$WORK/logs/report.log" "$PYTHON" -m llava.eval.report --table "$TABLE" --runs "$WORK/eval" \
        --out "$WORK/report"
    data_arg=(--recipe "$RECIPE")
    [ -f "$DATA_DIR/train.json" ] && data_arg=(--data "$DATA_DIR/train.json")
    say "estimate (python -m llava.train.plan ${data_arg[*]} --gpu $GPU --gpus $((NUM_GPUS * NNODES))):"
    "$PYTHON" -m llava.train.plan --r "${R:-32}" "${data_arg[@]}" --gpu "$GPU" --gpus $((NUM_GPUS * NNODES)) \
        --schemes "$(echo "$SCHEMES" | tr ' ' ',')" --benchmarks "$(echo "$BENCHMARKS" | tr ' ' ',')" 2>/dev/null \
        | sed -n '/^time on/,$p'
    exit 0
fi
run_stage "report" "$WORK/logs/report.log" "$PYTHON" -m llava.eval.report --table "$TABLE" --runs "$WORK/eval" \
    --out "$WORK/report"
cat "$WORK/report/table$TABLE.md"
say "done: $WORK/report/table$TABLE.md"
