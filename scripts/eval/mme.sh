#!/usr/bin/env bash
# MME (perception 10 subtasks, cognition 4): bash scripts/eval/mme.sh CKPT [NAME]
source "$(dirname "$0")/common.sh"
BENCH=mme BENCH_DIR=$EVAL_ROOT/MME QUESTIONS=$EVAL_ROOT/MME/llava_mme.jsonl
IMAGES=$EVAL_ROOT/MME/MME_Benchmark_release_version MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-128}
run_benchmark
