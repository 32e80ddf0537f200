"""Benchmarks in their official layouts: each module has `convert` (official files -> questions JSONL with
LLaVA-1.5's prompts), `score` (answers JSONL -> metrics dict) and `markdown` (metrics -> table)."""

from llava.eval.benchmarks import gqa, mme, mmvet, textvqa, vizwiz

BENCHMARKS = {"mme": mme, "gqa": gqa, "textvqa": textvqa, "vizwiz": vizwiz, "mmvet": mmvet}

__all__ = ["BENCHMARKS"]
