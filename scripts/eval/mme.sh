#!/usr/bin/env bash
# MME (perception 10 subtasks, cognition 4): bash scripts/eval/mme.sh CKPT [NAME]
# Also writes RUNS_DIR/NAME/official/mme_eval_tool/<subtask>.txt, the input of MME's own calculation.py.
source "$(dirname "$0")/common.sh"
BENCH=mme BENCH_DIR=$EVAL_ROOT/MME LLAVA_QUESTIONS=$EVAL_ROOT/MME/llava_mme.jsonl
OUR_QUESTIONS=$EVAL_ROOT/MME/converted_mme.jsonl IMAGES=$EVAL_ROOT/MME/MME_Benchmark_release_version
MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-128} EXPORT=mme_eval_tool
run_benchmark
