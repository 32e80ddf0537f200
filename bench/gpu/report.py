"""Gather validate.sh's parts (part_*.json, part_tests.xml, status_*.json, versions.json) into gpu_report.json and
gpu_report.md. A part that failed or ran out of time is reported as such, with what it measured before that.

python bench/gpu/report.py OUT
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import sys
import xml.etree.ElementTree as ET

PARTS = ("train", "layer", "decode", "deepspeed", "tests")


def read_json(path: str):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def read_tests(path: str) -> dict | None:
    """pytest's JUnit XML -> counts, failures (with their first message line) and skip reasons."""
    if not os.path.exists(path):
        return None
    root = ET.parse(path).getroot()
    out = {"collected": 0, "passed": 0, "failed": 0, "skipped": 0, "failures": [], "skips": []}
    for case in root.iter("testcase"):
        out["collected"] += 1
        name = f"{case.get('classname', '')}.{case.get('name', '')}"
        failure = case.find("failure") if case.find("failure") is not None else case.find("error")
        skipped = case.find("skipped")
        if failure is not None:
            out["failed"] += 1
            out["failures"].append({"test": name, "message": (failure.get("message") or "").splitlines()[:1]})
        elif skipped is not None:
            out["skipped"] += 1
            out["skips"].append({"test": name, "reason": skipped.get("message", "")})
        else:
            out["passed"] += 1
    return out


def gather(out_dir: str) -> dict:
    report = {"date": datetime.date.today().isoformat(), "versions": read_json(os.path.join(out_dir, "versions.json")),
              "parts": {}}
    for status in sorted(glob.glob(os.path.join(out_dir, "status_*.json"))):
        s = read_json(status)
        s["status"] = "ok" if s["rc"] == 0 else ("timed out" if s["rc"] in (124, 137) else f"failed (exit {s['rc']})")
        report["parts"][s["part"]] = s
    for part in ("train", "layer", "decode", "deepspeed"):
        report[part] = read_json(os.path.join(out_dir, f"part_{part}.json"))
    report["tests"] = read_tests(os.path.join(out_dir, "part_tests.xml"))
    return report


def fmt(value, spec=".2f", none="-") -> str:
    return none if value is None else format(value, spec)


def train_section(t: dict) -> list[str]:
    rows = t["schemes"]
    lora = rows.get("lora", {}).get("step_s")
    lines = [f"Device {t['device']}, attention `{t['attn']}`, bf16 autocast, activation checkpointing, AdamW (fused on CUDA); "
             f"LM head on labelled positions only: {t['head_on_labelled_only']}. Dense bf16 GEMM measured on this "
             f"device (8192^3, or 256^3 in the smoke run): {t['matmul_bf16_flops'] / 1e12:.1f} TFLOP/s; datasheet "
             f"peak: {fmt(t['datasheet_bf16_flops'] and t['datasheet_bf16_flops'] / 1e12, '.1f', 'unknown')} TFLOP/s.",
             "",
             "| scheme | batch x seq | step (s) | vs lora | tokens/s | MFU (datasheet) | of measured GEMM rate | "
             "planner step (s) | peak memory (GiB) | planner (GiB) | trainable params |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        if "step_s" not in r:
            lines.append(f"| {name} | {r.get('error', 'not measured')} ||||||||||")
            continue
        ratio = r["step_s"] / lora if lora else None
        if r.get("checkpointed_layers") is not None:
            name = f"{name} ({r['checkpointed_layers']} layers checkpointed)"
        lines.append(f"| {name} | {r['batch']} x {r['seq']} | {r['step_s']:.3f} | {fmt(ratio, '.3f')} | "
                     f"{r['tokens_per_s']:,.0f} | {fmt(r['mfu'] and 100 * r['mfu'], '.1f')}{'%' if r['mfu'] else ''} | "
                     f"{100 * r['of_matmul_ceiling']:.1f}% | {fmt(r.get('planner_step_s'), '.3g')} | {fmt(r['peak_gib'])} | "
                     f"{r['predicted_gib']:.3g} | "
                     f"{r['trainable']:,} |")
    lines += ["", "MFU counts model FLOPs only (bench/gpu/train_step.py's docstring: no recompute). Planner: "
              "`python -m llava.train.plan --zero 0 --gpus 1` at this batch and length: memory = model state + "
              "checkpointed activations + logits; step time = train/estimate.py's FLOPs (recompute included) at its "
              "assumed MFU on the datasheet peak. Measured utilisation in the planner's FLOP count: "
              + ", ".join(f"{n} {100 * r['planner_flops_utilisation']:.1f}%" for n, r in rows.items()
                          if "planner_flops_utilisation" in r)
              + f" (assumed {100 * next((r['planner_mfu'] for r in rows.values() if 'planner_mfu' in r), 0):.0f}%). "
              "Trainable counts in the planner: "
              + ", ".join(f"{n} {r['planner_trainable']:,}" for n, r in rows.items() if "planner_trainable" in r) + "."]
    return lines


def layer_section(t: dict) -> list[str]:
    shapes = list(t["ms"])
    lines = [f"{t['tokens']} tokens, {t['dtype']}, median of {t['reps']} paired rounds.", "",
             "| variant (ms) | " + " | ".join(shapes) + " |", "|---|" + "---|" * len(shapes)]
    for variant in t["ms"][shapes[0]]:
        lines.append(f"| {variant} | " + " | ".join(f"{t['ms'][s][variant]:.3f}" for s in shapes) + " |")
    lines += ["", "Ratios (median of per-round ratios): " + ", ".join(f"`{k}` {v}" for k, v in t["ratios"].items())]
    return lines


def decode_section(t: dict) -> list[str]:
    rows = t["rows"]
    batches = sorted({b for r in rows.values() for b in r if b.startswith("batch")},
                     key=lambda b: int(b.removeprefix("batch")))
    merged = rows.get("merged (base alone)", {})
    head = " | ".join(f"batch {b.removeprefix('batch')}: tokens/s | ms per step (fastest-slowest run) | vs merged"
                      for b in batches)
    runs = next((c["runs"] for r in rows.values() for c in r.values() if "runs" in c), "?")
    lines = [f"Prompt {t['prompt_tokens']} tokens (one image), {t['new_tokens']} new tokens, greedy, attention "
             f"`{t['attn']}`; decode only (prefill subtracted), median of {runs} runs.", "",
             f"| variant | {head} | short-answer eval: questions/s |", "|---|" + "---|---|---|" * len(batches) + "---|"]
    for label, r in rows.items():
        cells = []
        for b in batches:
            cell = r.get(b, {})
            if "tokens_per_s" not in cell:
                cells += [cell.get("error", "-"), "-", "-"]
                continue
            base = merged.get(b, {}).get("tokens_per_s")
            spread = (f"{cell['ms_per_step']:.2f} ({cell['ms_per_step_min']:.2f}-{cell['ms_per_step_max']:.2f})"
                      if "ms_per_step_min" in cell else f"{cell['ms_per_step']:.2f}")
            cells += [f"{cell['tokens_per_s']:,.1f}", spread, fmt(base and cell["tokens_per_s"] / base, ".3f")]
        evaluation = r.get("eval", {})
        cells.append(f"{evaluation['questions_per_s']:.1f} (batch {evaluation['batch']}, {evaluation['answer_tokens']} "
                     "tokens)" if "questions_per_s" in evaluation else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def deepspeed_section(t: dict) -> list[str]:
    if "error" in t:
        return [t["error"]]
    lines = [f"`bash scripts/finetune_asymlora.sh`, DeepSpeed {t['deepspeed']}, one process, bf16, a parts-built model "
             f"(bench/gpu/deepspeed_card.py); {t['steps']} steps, then resumed from checkpoint-2.", "",
             "| stage | exit | wall (s) | s per step | losses | resumed: exit | steps 3-4, largest difference |",
             "|---|---|---|---|---|---|---|"]
    for stage, r in t["stages"].items():
        losses = " / ".join(f"{x:.4f}" for x in r.get("losses", [])) or r.get("error", "-")
        resumed = r.get("resumed", {})
        lines.append(f"| {stage} | {r['rc']} | {r['wall_s']} | {fmt(r.get('step_s'), '.3f')} | {losses} | "
                     f"{resumed.get('rc', '-')} | {fmt(r.get('resume_max_difference'), '.2e')} |")
    return lines


def tests_section(t: dict) -> list[str]:
    lines = [f"`pytest -m cuda`: {t['collected']} collected, {t['passed']} passed, {t['failed']} failed, "
             f"{t['skipped']} skipped."]
    lines += [f"- failed: {f['test']}: {' '.join(f['message'])}" for f in t["failures"]]
    lines += [f"- skipped: {s['test']}: {s['reason']}" for s in t["skips"]]
    return lines


def markdown(report: dict) -> str:
    v = report["versions"] or {}
    lines = [f"# GPU check ({v.get('mode', '?')}), {report['date']}", "",
             "Command: `bash bench/gpu/validate.sh" + (" --cpu-smoke" if v.get("mode") == "cpu-smoke" else "") + " OUT`",
             "", "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if k != "mode"), "",
             "| part | status | seconds (cap) |", "|---|---|---|"]
    for part in PARTS:
        s = report["parts"].get(part)
        lines.append(f"| {part} | {s['status']} | {s['wall_s']} ({s['cap_s']}) |" if s else f"| {part} | not run | - |")
    builders = {"train": ("Training step, LLaVA-1.5-7B shape", train_section),
                "layer": ("Adapter layer, bf16", layer_section),
                "decode": ("Decoding", decode_section),
                "deepspeed": ("The card's command under DeepSpeed, resumed", deepspeed_section),
                "tests": ("CUDA tests", tests_section)}
    for part, (title, build) in builders.items():
        lines += ["", f"## {title}", ""]
        if report[part]:
            lines += build(report[part])
        else:
            lines.append("Not run (--parts)." if part not in report["parts"] else "No result: see the part's log.")
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not os.path.isdir(argv[0]):
        raise SystemExit("usage: python bench/gpu/report.py OUT (the folder validate.sh wrote)")
    out_dir = argv[0]
    report = gather(out_dir)
    with open(os.path.join(out_dir, "gpu_report.json"), "w") as f:
        json.dump(report, f, indent=1)
    text = markdown(report)
    with open(os.path.join(out_dir, "gpu_report.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
