"""python -m llava.data.recipes NAME --raw DIR --out DIR [options]: one of the paper's training sets from the public
downloads (see llava/data/recipes/__init__.py and docs/paper.md for the layout --raw must have)."""

from __future__ import annotations

import argparse
import os
import sys

from llava.data import preprocess
from llava.data.recipes import conversation58k, mix665k, multidomain, vqg
from llava.data.recipes.output import RecipeError, publish


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m llava.data.recipes", description=__doc__)
    sub = ap.add_subparsers(dest="recipe", required=True, metavar="NAME")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--raw", required=True, help="the downloads as they unpack (also the image folder)")
    common.add_argument("--out", required=True, help="where train.json and manifest.json go")
    common.add_argument("--seed", type=int, default=0, help="seed of every sample drawn")
    common.add_argument("--overwrite", action="store_true", help="replace an earlier output in --out")
    common.add_argument("--tokenizer", default=None,
                        help="a Vicuna / LLaVA dir: the pre-flight also tokenizes every sample with it")
    common.add_argument("--workers", type=int, default=-1, help="pre-flight processes (-1: up to 8 for large data)")
    common.add_argument("--no-preflight", action="store_true", help="skip the check (training runs it anyway)")
    c58 = sub.add_parser("conversation58k", parents=[common], help="Table 2: conversation_58k.json on COCO")
    c58.add_argument("--limit", type=int, default=None, help="first N records only")
    m665 = sub.add_parser("mix665k", parents=[common], help="Table 3: llava_v1_5_mix665k.json labelled by source")
    m665.add_argument("--json", default=None, help="the mixture file (default RAW/llava_v1_5_mix665k.json)")
    m665.add_argument("--tasks", default=None, help="group sources into tasks, e.g. "
                      "'vqa=vqav2,okvqa,gqa,ocr_vqa,a-okvqa gen=llava,sharegpt,textcaps,refcoco,vg' "
                      f"(default: each source its own task; sources: {', '.join(mix665k.SOURCES)})")
    m665.add_argument("--drop", default="", help="sources to leave out, comma-separated")
    md = sub.add_parser("multidomain", parents=[common], help="Table 4: VQAv2 + LLaVA-15k + VQG")
    md.add_argument("--vqa", type=int, default=None, help="VQAv2 images (conversations) to sample (default all)")
    md.add_argument("--llava", type=int, default=multidomain.LLAVA_15K, help="LLaVA-Instruct records to sample")
    md.add_argument("--llava-ids", default=None, help="JSON list of llava_instruct_150k ids (or records) to use")
    md.add_argument("--vqg", type=int, default=None, help="VQG questions to sample (default all)")
    md.add_argument("--vqg-splits", default=None, help="VQG CSVs to read, e.g. train,val (default every coco_*_all.csv)")
    md.add_argument("--vqg-prompt", default=vqg.PROMPT, help="the user turn of a question-generation sample")
    return ap


def build(args):
    if args.recipe == "conversation58k":
        return conversation58k.build(args.raw, args.limit), {"limit": args.limit}
    if args.recipe == "mix665k":
        drop = tuple(s.strip() for s in args.drop.split(",") if s.strip())
        return (mix665k.build(args.raw, args.json, args.tasks, drop),
                {"json": args.json, "tasks": args.tasks, "drop": list(drop)})
    splits = [s.strip() for s in args.vqg_splits.split(",")] if args.vqg_splits else None
    options = {"seed": args.seed, "vqa": args.vqa, "llava": args.llava, "llava_ids": args.llava_ids,
               "vqg": args.vqg, "vqg_splits": splits, "vqg_prompt": args.vqg_prompt}
    return multidomain.build(args.raw, args.seed, args.vqa, args.llava, args.llava_ids, args.vqg, splits,
                             args.vqg_prompt), options


def load_tokenizer(path: str | None):
    if path is None:
        return None
    if not os.path.isdir(path):
        raise RecipeError(f"--tokenizer {path}: not a directory (a Vicuna or LLaVA checkpoint dir)")
    return preprocess.load_tokenizer(path)


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        built, options = build(args)
        publish(built, args.out, args.raw, args.recipe, options, overwrite=args.overwrite,
                tokenizer=load_tokenizer(args.tokenizer), workers=args.workers, run_check=not args.no_preflight)
    except RecipeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
