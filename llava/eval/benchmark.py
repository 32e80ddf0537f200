"""python -m llava.eval.benchmark {convert,score,submission} NAME ...

convert     official files under --root/<NAME dir>/ -> a questions JSONL for llava.eval.generate, line for line what
            LLaVA-1.5's eval.zip holds for the same questions
score       an answers JSONL (ours or LLaVA's) -> <out-dir>/<NAME>.json and .md, and the table on stdout
export      an answers JSONL -> the file the official evaluator reads, as LLaVA's scripts write it: gqa predictions
            (GQA's eval.py), mme eval_tool folder (MME's calculation.py), mmvet results (MM-Vet's grader), vizwiz
            EvalAI upload (--split test)
submission  (vizwiz) the same as export
check       --questions FILE: stop if FILE, under one of LLaVA's names, was written by an earlier version of ours
"""

from __future__ import annotations

import argparse
import json
import os

from llava.eval.benchmarks import BENCHMARKS
from llava.eval.benchmarks.common import generation_settings, unanswered_ids
from llava.eval.benchmarks.mmvet_grader import GraderUnavailable
from llava.eval.jsonl import read_jsonl
from llava.eval.judge import JudgeNotConfigured


def main(argv=None):
    try:
        run(argv)
    except (FileNotFoundError, ValueError, JudgeNotConfigured, GraderUnavailable) as e:  # the user's to fix
        raise SystemExit(f"error: {e}") from e


def export(name: str, root: str, answers: str, out: str, split: str | None = None) -> int:
    """The official evaluator's input from an answers file; returns how many answers it holds."""
    if name == "gqa":
        return BENCHMARKS["gqa"].predictions(answers, out)
    if name == "mme":
        return BENCHMARKS["mme"].eval_tool(root, answers, out)
    if name == "mmvet":
        return BENCHMARKS["mmvet"].results(answers, out)
    if name == "vizwiz":
        return BENCHMARKS["vizwiz"].submission(root, answers, out, split or "test")
    raise ValueError("textvqa val is scored here as LLaVA's eval_textvqa.py scores it: there is no file to export")


def old_ids(name: str, first: dict) -> bool:
    """Whether a question file's first row has the ids our converters wrote before they followed LLaVA's files
    (and wrote them under LLaVA's names)."""
    qid = first["question_id"]
    return {"mme": isinstance(qid, str) and "#" in qid,
            "textvqa": isinstance(qid, int),
            "vizwiz": isinstance(qid, str) and qid.endswith(".jpg"),
            "mmvet": isinstance(qid, str) and qid.startswith("v1_")}.get(name, False)


def check_questions(name: str, path: str) -> None:
    rows = read_jsonl(path, required=("question_id", "text"))
    if rows and old_ids(name, rows[0]):
        raise ValueError(f"{path} was written by an earlier llava-asymlora, not taken from LLaVA's eval.zip (its "
                         f"question_id {rows[0]['question_id']!r} is not LLaVA's); delete it, then the script uses "
                         "LLaVA's file if you put it there, or converts the benchmark's release anew")


def run(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["convert", "score", "export", "submission", "check"])
    ap.add_argument("name", choices=sorted(BENCHMARKS))
    ap.add_argument("--root", default="playground/data/eval", help="where the benchmark folders are")
    ap.add_argument("--out", help="convert/submission: output file")
    ap.add_argument("--answers", help="score/submission: answers JSONL")
    ap.add_argument("--questions", help="check: a question file under one of LLaVA's names")
    ap.add_argument("--out-dir", help="score: where <name>.json/.md go")
    ap.add_argument("--split", default=None, help="vizwiz: val (scored locally) or test (submission)")
    ap.add_argument("--no-ocr", action="store_true", help="textvqa: prompts without reference OCR tokens")
    args = ap.parse_args(argv)
    bench = BENCHMARKS[args.name]
    kwargs = {}
    if args.split and args.name == "vizwiz":
        kwargs["split"] = args.split
    if args.action == "check":
        check_questions(args.name, args.questions)
        return
    if args.action == "convert":
        if args.name == "textvqa":
            kwargs["with_ocr"] = not args.no_ocr
        n = bench.convert(args.root, args.out, **kwargs)
        print(f"{args.name}: {n} questions -> {args.out}")
    elif args.action in ("export", "submission"):
        if args.name != "vizwiz" and args.action == "submission":
            ap.error("submission files exist for vizwiz only (see export)")
        n = export(args.name, args.root, args.answers, args.out, args.split)
        print(f"{args.name}: {n} answers in the official evaluator's format -> {args.out}")
    else:
        metrics = bench.score(args.root, args.answers, **kwargs)
        metrics["unanswered"] = unanswered_ids(args.answers)  # scored as wrong; listed, never dropped
        metrics["generation"] = generation_settings(args.answers)  # dtype, batch, template: the report states them
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
