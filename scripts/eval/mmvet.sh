#!/usr/bin/env bash
# MM-Vet, graded by an LLM judge (set OPENAI_BASE_URL, OPENAI_API_KEY, optionally MMVET_JUDGE_MODEL):
# bash scripts/eval/mmvet.sh CKPT [NAME]. Also writes RUNS_DIR/NAME/official/mmvet_results.json for MM-Vet's own grader.
source "$(dirname "$0")/common.sh"
BENCH=mmvet BENCH_DIR=$EVAL_ROOT/mm-vet LLAVA_QUESTIONS=$EVAL_ROOT/mm-vet/llava-mm-vet.jsonl
OUR_QUESTIONS=$EVAL_ROOT/mm-vet/converted_mm-vet.jsonl IMAGES=$EVAL_ROOT/mm-vet/images
MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-1024}  # LLaVA-1.5 model_vqa.py's default for MM-Vet
EXPORT=mmvet_results.json
run_benchmark
