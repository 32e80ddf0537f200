#!/usr/bin/env bash
# VizWiz: SPLIT=val (default) scores locally by answer type; SPLIT=test writes the EvalAI submission file.
# bash scripts/eval/vizwiz.sh CKPT [NAME]
source "$(dirname "$0")/common.sh"
SPLIT=${SPLIT:-val}
BENCH=vizwiz BENCH_DIR=$EVAL_ROOT/vizwiz QUESTIONS=$EVAL_ROOT/vizwiz/llava_$SPLIT.jsonl IMAGES=$EVAL_ROOT/vizwiz
CONVERT_ARGS="--split $SPLIT" SCORE_ARGS="--split $SPLIT" MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-128}
if [ "$SPLIT" = "test" ]; then
    run_benchmark() {
        [ -f "$QUESTIONS" ] || "$PYTHON" -m llava.eval.benchmark convert vizwiz --root "$EVAL_ROOT" --out "$QUESTIONS" --split test
        "$PYTHON" -m llava.eval.generate --model-path "$CKPT" --question-file "$QUESTIONS" --image-folder "$IMAGES" \
            --answers-file "$(answers_dir)/$NAME-test.jsonl" --batch-size "$BATCH" --max_new_tokens "$MAX_NEW_TOKENS"
        "$PYTHON" -m llava.eval.benchmark submission vizwiz --root "$EVAL_ROOT" --split test \
            --answers "$(answers_dir)/$NAME-test.jsonl" --out "$BENCH_DIR/answers_upload/$NAME.json"
    }
fi
run_benchmark
