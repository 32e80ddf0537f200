#!/usr/bin/env bash
# GQA test-dev balanced (accuracy, binary, open, distribution): bash scripts/eval/gqa.sh CKPT [NAME]
source "$(dirname "$0")/common.sh"
BENCH=gqa BENCH_DIR=$EVAL_ROOT/gqa QUESTIONS=$EVAL_ROOT/gqa/llava_gqa_testdev_balanced.jsonl
IMAGES=$EVAL_ROOT/gqa/data/images MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-128}
run_benchmark
