#!/usr/bin/env bash
# VizWiz: SPLIT=val (default) scores locally by answer type; SPLIT=test answers test-dev and writes the EvalAI
# upload file (the split the paper's VizWiz columns come from). bash scripts/eval/vizwiz.sh CKPT [NAME]
source "$(dirname "$0")/common.sh"
SPLIT=${SPLIT:-val}
BENCH=vizwiz BENCH_DIR=$EVAL_ROOT/vizwiz OUR_QUESTIONS=$EVAL_ROOT/vizwiz/converted_vizwiz_$SPLIT.jsonl
IMAGES=$EVAL_ROOT/vizwiz/$SPLIT CONVERT_ARGS="--split $SPLIT" SCORE_ARGS="--split $SPLIT"
MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-128}
if [ "$SPLIT" = "test" ]; then
    LLAVA_QUESTIONS=$EVAL_ROOT/vizwiz/llava_test.jsonl
    pick_questions
    generate "$(answers_dir)/$NAME-test.jsonl"
    "$PYTHON" -m llava.eval.benchmark export vizwiz --root "$EVAL_ROOT" --split test \
        --answers "$(answers_dir)/$NAME-test.jsonl" --out "$BENCH_DIR/answers_upload/$NAME.json"
else
    run_benchmark
fi
