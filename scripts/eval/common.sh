#!/usr/bin/env bash
# Shared body of scripts/eval/*.sh: convert (once), generate (resumable, optionally in chunks), score.
# Usage of each script: bash scripts/eval/<bench>.sh CKPT [NAME]. Knobs: EVAL_ROOT, PYTHON, BATCH, MAX_NEW_TOKENS,
# CONV_MODE, TASK (task head of a task-routed adapter), NUM_CHUNKS (parallel processes, one per GPU), RUNS_DIR,
# ANSWERS_DIR (answers go to ANSWERS_DIR/<bench>/NAME.jsonl; default the benchmark's own answers/ folder).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

if [ $# -lt 1 ]; then
    echo "usage: bash $0 CKPT [NAME]" >&2
    exit 2
fi
CKPT=$1
NAME=${2:-$(basename "${CKPT%/}")}
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
EVAL_ROOT=${EVAL_ROOT:-./playground/data/eval}
RUNS_DIR=${RUNS_DIR:-./eval/runs}
BATCH=${BATCH:-8}
NUM_CHUNKS=${NUM_CHUNKS:-1}

answers_dir() {  # where this benchmark's answer files go
    if [ -n "${ANSWERS_DIR:-}" ]; then echo "$ANSWERS_DIR/$BENCH"; else echo "$BENCH_DIR/answers"; fi
}

run_benchmark() {  # needs BENCH, BENCH_DIR, QUESTIONS, IMAGES; optional CONVERT_ARGS, SCORE_ARGS, MAX_NEW_TOKENS
    local answers
    answers="$(answers_dir)/$NAME.jsonl"
    if [ ! -f "$QUESTIONS" ]; then
        "$PYTHON" -m llava.eval.benchmark convert "$BENCH" --root "$EVAL_ROOT" --out "$QUESTIONS" ${CONVERT_ARGS:-}
    fi
    local gen=(--model-path "$CKPT" --question-file "$QUESTIONS" --image-folder "$IMAGES"
               --batch-size "$BATCH" --max_new_tokens "${MAX_NEW_TOKENS:-128}")
    [ -n "${CONV_MODE:-}" ] && gen+=(--conv-mode "$CONV_MODE")
    [ -n "${TASK:-}" ] && gen+=(--task "$TASK")
    if [ "$NUM_CHUNKS" -gt 1 ]; then
        local pids=() failed=0
        for ((i = 0; i < NUM_CHUNKS; i++)); do
            CUDA_VISIBLE_DEVICES=$i "$PYTHON" -m llava.eval.generate "${gen[@]}" --num-chunks "$NUM_CHUNKS" \
                --chunk-idx "$i" --answers-file "$(answers_dir)/$NAME/chunk_$i.jsonl" &
            pids+=($!)
        done
        for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
        if [ "$failed" = "1" ]; then
            echo "error: a generation chunk failed (answers so far are kept; re-run to resume)" >&2
            exit 1
        fi
        cat "$(answers_dir)/$NAME"/chunk_*.jsonl > "$answers"
    else
        "$PYTHON" -m llava.eval.generate "${gen[@]}" --answers-file "$answers"
    fi
    "$PYTHON" -m llava.eval.benchmark score "$BENCH" --root "$EVAL_ROOT" --answers "$answers" \
        --out-dir "$RUNS_DIR/$NAME" ${SCORE_ARGS:-}
}
