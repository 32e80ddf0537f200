#!/usr/bin/env bash
# GQA test-dev balanced (accuracy, binary, open, distribution): bash scripts/eval/gqa.sh CKPT [NAME]
# Also writes RUNS_DIR/NAME/official/gqa_predictions.json, the input of GQA's own eval.py.
source "$(dirname "$0")/common.sh"
BENCH=gqa BENCH_DIR=$EVAL_ROOT/gqa LLAVA_QUESTIONS=$EVAL_ROOT/gqa/llava_gqa_testdev_balanced.jsonl
OUR_QUESTIONS=$EVAL_ROOT/gqa/converted_gqa_testdev_balanced.jsonl IMAGES=$EVAL_ROOT/gqa/data/images
MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-128} EXPORT=gqa_predictions.json
run_benchmark
