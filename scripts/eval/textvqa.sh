#!/usr/bin/env bash
# TextVQA val (VQA soft accuracy): bash scripts/eval/textvqa.sh CKPT [NAME]; OCR=0 drops the reference OCR tokens.
source "$(dirname "$0")/common.sh"
if [ "${OCR:-1}" = "0" ]; then
    OUR_QUESTIONS=$EVAL_ROOT/textvqa/converted_textvqa_val_v051.jsonl CONVERT_ARGS=--no-ocr NAME=$NAME-no-ocr
else
    LLAVA_QUESTIONS=$EVAL_ROOT/textvqa/llava_textvqa_val_v051_ocr.jsonl
    OUR_QUESTIONS=$EVAL_ROOT/textvqa/converted_textvqa_val_v051_ocr.jsonl
fi
BENCH=textvqa BENCH_DIR=$EVAL_ROOT/textvqa IMAGES=$EVAL_ROOT/textvqa/train_images MAX_NEW_TOKENS=${MAX_NEW_TOKENS:-128}
run_benchmark
