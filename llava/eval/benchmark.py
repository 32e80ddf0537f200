"""python -m llava.eval.benchmark {convert,score,submission} NAME ...

convert     official files under --root/<NAME dir>/ -> a questions JSONL for llava.eval.generate
score       an answers JSONL -> <out-dir>/<NAME>.json and .md, and the table on stdout
submission  (vizwiz) an answers JSONL on test -> the EvalAI upload file
"""

from __future__ import annotations

import argparse
import json
import os

from llava.eval.benchmarks import BENCHMARKS
from llava.eval.benchmarks.common import unanswered_ids
from llava.eval.benchmarks.mmvet_grader import GraderUnavailable
from llava.eval.judge import JudgeNotConfigured


def main(argv=None):
    try:
        run(argv)
    except (FileNotFoundError, ValueError, JudgeNotConfigured, GraderUnavailable) as e:  # the user's to fix
        raise SystemExit(f"error: {e}") from e


def run(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["convert", "score", "submission"])
    ap.add_argument("name", choices=sorted(BENCHMARKS))
    ap.add_argument("--root", default="playground/data/eval", help="where the benchmark folders are")
    ap.add_argument("--out", help="convert/submission: output file")
    ap.add_argument("--answers", help="score/submission: answers JSONL")
    ap.add_argument("--out-dir", help="score: where <name>.json/.md go")
    ap.add_argument("--split", default=None, help="vizwiz: val (scored locally) or test (submission)")
    ap.add_argument("--no-ocr", action="store_true", help="textvqa: prompts without reference OCR tokens")
    args = ap.parse_args(argv)
    bench = BENCHMARKS[args.name]
    kwargs = {}
    if args.split and args.name == "vizwiz":
        kwargs["split"] = args.split
    if args.action == "convert":
        if args.name == "textvqa":
            kwargs["with_ocr"] = not args.no_ocr
        n = bench.convert(args.root, args.out, **kwargs)
        print(f"{args.name}: {n} questions -> {args.out}")
    elif args.action == "submission":
        if args.name != "vizwiz":
            ap.error("submission files exist for vizwiz only")
        n = bench.submission(args.root, args.answers, args.out, **kwargs)
        print(f"vizwiz: EvalAI submission with {n} answers -> {args.out}")
    else:
        metrics = bench.score(args.root, args.answers, **kwargs)
        metrics["unanswered"] = unanswered_ids(args.answers)  # scored as wrong; listed, never dropped
        table = bench.markdown(metrics)
        if metrics["unanswered"]:
            table += (f"\n\n{len(metrics['unanswered'])} questions unanswered (image missing), scored as wrong: "
                      f"{metrics['unanswered'][:10]}")
        if args.out_dir:
            os.makedirs(args.out_dir, exist_ok=True)
            with open(os.path.join(args.out_dir, f"{args.name}.json"), "w") as f:
                json.dump(metrics, f, indent=2)
            with open(os.path.join(args.out_dir, f"{args.name}.md"), "w") as f:
                f.write(table + "\n")
        print(table)


if __name__ == "__main__":
    main()
