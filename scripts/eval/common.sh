#!/usr/bin/env bash
# Shared body of scripts/eval/*.sh: pick the question file, generate (resumable, optionally in chunks), score, and
# write the official evaluator's input. Usage of each script: bash scripts/eval/<bench>.sh CKPT [NAME].
# Question file: LLaVA-1.5's own (from its eval.zip, e.g. MME/llava_mme.jsonl) when it is there, used as it is;
# else ours, converted from the benchmark's release into converted_<...>.jsonl (a name LLaVA's files never have),
# line for line what LLaVA's file holds for the same questions.
# Knobs: EVAL_ROOT, PYTHON, BATCH (8; LLaVA answers one at a time, batched answers are the same), DTYPE (auto: fp16
# on a GPU as LLaVA evaluates, fp32 on the CPU; bf16 to answer as training ran), MAX_NEW_TOKENS, CONV_MODE, TASK
# (task head of a task-routed adapter), COMPILE=1 (static KV cache, compiled decoding step: same greedy answers),
# NUM_CHUNKS (parallel processes, one per GPU), RUNS_DIR, ANSWERS_DIR
# (answers go to ANSWERS_DIR/<bench>/NAME.jsonl; default the benchmark's own answers/ folder).
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
DTYPE=${DTYPE:-auto}
NUM_CHUNKS=${NUM_CHUNKS:-1}

answers_dir() {  # where this benchmark's answer files go
    if [ -n "${ANSWERS_DIR:-}" ]; then echo "$ANSWERS_DIR/$BENCH"; else echo "$BENCH_DIR/answers"; fi
}

# pick_questions: QUESTIONS = LLaVA's file LLAVA_QUESTIONS when present, else OUR_QUESTIONS converted afresh.
pick_questions() {
    if [ -n "${LLAVA_QUESTIONS:-}" ] && [ -f "$LLAVA_QUESTIONS" ]; then
        QUESTIONS=$LLAVA_QUESTIONS
        "$PYTHON" -m llava.eval.benchmark check "$BENCH" --questions "$QUESTIONS"
        echo "$BENCH: LLaVA's question file $QUESTIONS"
    else
        QUESTIONS=$OUR_QUESTIONS
        # shellcheck disable=SC2086
        "$PYTHON" -m llava.eval.benchmark convert "$BENCH" --root "$EVAL_ROOT" --out "$QUESTIONS" ${CONVERT_ARGS:-}
    fi
}

# generate ANSWERS: answer QUESTIONS into ANSWERS (NUM_CHUNKS processes, one per GPU, then merged in order)
generate() {
    local answers=$1
    local gen=(--model-path "$CKPT" --question-file "$QUESTIONS" --image-folder "$IMAGES"
               --batch-size "$BATCH" --dtype "$DTYPE" --max_new_tokens "${MAX_NEW_TOKENS:-128}")
    [ -n "${CONV_MODE:-}" ] && gen+=(--conv-mode "$CONV_MODE")
    [ -n "${TASK:-}" ] && gen+=(--task "$TASK")
    [ "${COMPILE:-0}" = 1 ] && gen+=(--compile)
    if [ "$NUM_CHUNKS" -gt 1 ]; then
        local pids=() failed=0 parts="${answers%.jsonl}"
        for ((i = 0; i < NUM_CHUNKS; i++)); do
            CUDA_VISIBLE_DEVICES=$i "$PYTHON" -m llava.eval.generate "${gen[@]}" --num-chunks "$NUM_CHUNKS" \
                --chunk-idx "$i" --answers-file "$parts/chunk_$i.jsonl" &
            pids+=($!)
        done
        for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
        if [ "$failed" = "1" ]; then
            echo "error: a generation chunk failed (answers so far are kept; re-run to resume)" >&2
            exit 1
        fi
        for ((i = 0; i < NUM_CHUNKS; i++)); do cat "$parts/chunk_$i.jsonl"; done > "$answers"
    else
        "$PYTHON" -m llava.eval.generate "${gen[@]}" --answers-file "$answers"
    fi
}

run_benchmark() {  # needs BENCH, BENCH_DIR, OUR_QUESTIONS, IMAGES; optional LLAVA_QUESTIONS, CONVERT_ARGS, SCORE_ARGS, EXPORT
    local answers
    answers="$(answers_dir)/$NAME.jsonl"
    pick_questions
    generate "$answers"
    # shellcheck disable=SC2086
    "$PYTHON" -m llava.eval.benchmark score "$BENCH" --root "$EVAL_ROOT" --answers "$answers" \
        --out-dir "$RUNS_DIR/$NAME" ${SCORE_ARGS:-}
    if [ -n "${EXPORT:-}" ]; then
        "$PYTHON" -m llava.eval.benchmark export "$BENCH" --root "$EVAL_ROOT" --answers "$answers" \
            --out "$RUNS_DIR/$NAME/official/$EXPORT"
    fi
}
