"""Lay our scored runs beside the AsymLoRA paper's tables, in the paper's layout (markdown + PNG bar chart).

python -m llava.eval.report [--table 2] [--runs eval/runs] [--paper eval/paper_tables.json] [--out eval/report]

A run is a folder eval/runs/<NAME>/ holding <benchmark>.json files written by `llava.eval.benchmark score`
(scripts/eval/*.sh put them there). Cells a run has not measured stay empty. A run.json beside them (written by
scripts/paper/table.sh) names the run's scheme, so a row of differences to the paper's row for that scheme follows
ours, and lists benchmarks still pending (MM-Vet without a judge), shown as such.
"""

from __future__ import annotations

import argparse
import json
import os

# Paper column name -> (benchmark file, metric key).
COLUMNS = {
    "TextVQA": ("textvqa", "accuracy"),
    "MM-Vet": ("mmvet", "total"),
    "MME Perception": ("mme", "perception"),
    "MME Cognition": ("mme", "cognition"),
    "GQA Binary": ("gqa", "binary"),
    "GQA Open": ("gqa", "open"),
    "GQA Acc": ("gqa", "accuracy"),
    "GQA Dis": ("gqa", "distribution"),
    "VizWiz Unanswerable": ("vizwiz", "unanswerable"),
    "VizWiz Yes/No": ("vizwiz", "yes/no"),
    "VizWiz Number": ("vizwiz", "number"),
    "VizWiz Other": ("vizwiz", "other"),
    "VizWiz Average": ("vizwiz", "average"),
}


PAPER_SCHEMES = {"lora": "LoRA", "moe_lora": "MoE-LoRA", "asymlora": "AsymLoRA"}
# Which of the paper's rows a run of scripts/paper/table.sh reproduces, per table: (scheme, data) or None (a row of
# ours the paper has not). Table 4's MoE-LoRA is Table 1's "Multiple LoRA (MoE)": separately trained LoRAs combined
# (moe_lora_experts); the jointly trained moe_lora is a row of its own there.
PAPER_ROWS = {
    "1": {"lora_vqa": ("Single LoRA", "VQA"), "lora_gen": ("Single LoRA", "Gen"), "lora": ("Single LoRA", "VQA+Gen"),
          "moe_lora_experts": ("Multiple LoRA (MoE)", "VQA+Gen"), "asymlora": None},
    "4": {"lora": ("LoRA", None), "moe_lora_experts": ("MoE-LoRA", None), "moe_lora": None,
          "asymlora": ("AsymLoRA", None)},
}
RUN_INFO = "run.json"
RUN_SUMMARY = "run_summary.json"  # written by training beside its checkpoint (llava.train.run_report)
START = {"llava": "llava-v1.5-7b", "vicuna": "Vicuna-7B + stage-1 projector"}
AUTHORS_GLOBAL_BATCH = 2  # their script: one GPU, 1 per device x 2 accumulation


def paper_row(table: str, scheme: str) -> tuple[str, str | None] | None:
    """The paper's (scheme, data) row that our `scheme` reproduces in `table`, or None."""
    if table in PAPER_ROWS:
        return PAPER_ROWS[table].get(scheme)
    return (PAPER_SCHEMES[scheme], None) if scheme in PAPER_SCHEMES else None


def load_runs(runs_dir: str) -> dict[str, dict[str, dict]]:
    """run name -> benchmark -> metrics; the run's run.json (if any) under the key "run"."""
    runs: dict[str, dict[str, dict]] = {}
    if not os.path.isdir(runs_dir):
        return runs
    for name in sorted(os.listdir(runs_dir)):
        folder = os.path.join(runs_dir, name)
        if not os.path.isdir(folder):
            continue
        for fname in sorted(os.listdir(folder)):
            if fname.endswith(".json"):
                with open(os.path.join(folder, fname)) as f:
                    metrics = json.load(f)
                key = "run" if fname == RUN_INFO else metrics.get("benchmark", fname[:-5])
                runs.setdefault(name, {})[key] = metrics
    return runs


def read_summary(checkpoint: str | None) -> dict:
    path = os.path.join(checkpoint, RUN_SUMMARY) if checkpoint else None
    if not path or not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def row_notes(name: str, metrics: dict[str, dict]) -> list[str]:
    """Every way a run of ours may differ from the paper's numbers, said per row: start checkpoint and run settings,
    adapter precision, global batch and optimizer steps, evaluation dtype and batch, VizWiz split, MM-Vet judge."""
    info = metrics.get("run", {})
    notes = []
    if info.get("start"):
        notes.append(f"from {info.get('model')} (START={info['start']}: {START.get(info['start'], '')}), "
                     f"PRESET={info.get('preset', '')}")
    summary = read_summary(info.get("checkpoint"))
    if summary:
        batch = f"global batch {summary['global_batch']} ({summary['world_size']} processes)"
        if info.get("preset") == "authors" and summary["global_batch"] != AUTHORS_GLOBAL_BATCH:
            batch += f", the authors' {AUTHORS_GLOBAL_BATCH}"
        notes.append(f"trained: {summary['optimizer_steps']:,} optimizer steps, {batch}; adapters "
                     f"{summary['adapter_precision']}")
    generation = {bench: m["generation"] for bench, m in metrics.items() if isinstance(m, dict) and m.get("generation")}
    settings = sorted({f"{g.get('dtype', '?')}, batch {g.get('batch_size', '?')}" for g in generation.values()})
    if settings:
        notes.append("answered in " + "; ".join(settings) + " (LLaVA-1.5: fp16, one question at a time)")
    if "vizwiz" in metrics:
        notes.append(f"VizWiz: {metrics['vizwiz'].get('split', 'val')}, scored here; the paper's columns are EvalAI's "
                     "test-dev breakdown, so no difference to the paper is shown for them")
    if info.get("vizwiz_upload"):
        notes.append(f"VizWiz test-dev answers for EvalAI in {info['vizwiz_upload']}")
    if metrics.get("mmvet", {}).get("judge_model"):
        notes.append(f"MM-Vet judge: {metrics['mmvet']['judge_model']} (the paper: GPT-4, MM-Vet's grader)")
    return [f"{name}: {n}" for n in notes]


def run_values(columns: list[str], metrics: dict[str, dict]) -> list[float | None]:
    out = []
    for col in columns:
        bench, key = COLUMNS[col]
        out.append(metrics.get(bench, {}).get(key))
    return out


def render(table: dict, runs: dict[str, dict[str, dict]], number: str = "") -> tuple[str, list[tuple[str, list]]]:
    columns = table["columns"]
    has_data = any("data" in row for row in table["rows"])
    head = ["scheme"] + (["data"] if has_data else []) + columns
    lines = [f"**{table['title']}** (paper rows as published; ours measured by scripts/eval/*.sh)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = []
    for row in table["rows"]:
        label = f"{row['scheme']} (paper)"
        rows.append((label, row["values"]))
        lines.append("| " + " | ".join([label] + ([row.get("data", "")] if has_data else [])
                                       + [f"{v:g}" for v in row["values"]]) + " |")
    paper = {(row["scheme"], row.get("data")): row["values"] for row in table["rows"]}
    notes = []
    for name, metrics in runs.items():
        values = run_values(columns, metrics)
        info = metrics.get("run", {})
        pending = set(info.get("pending", []))
        if all(v is None for v in values) and not pending:
            continue
        label = f"{name} (ours)"
        rows.append((label, values))
        notes += row_notes(name, metrics)
        cells = ["pending" if v is None and COLUMNS[c][0] in pending else "" if v is None else f"{v:.2f}"
                 for c, v in zip(columns, values)]
        lines.append("| " + " | ".join([label] + ([""] if has_data else []) + cells) + " |")
        row = paper_row(number or str(info.get("table", "")), info.get("scheme", ""))
        reference = paper.get(row) if row else None
        if reference is not None:
            diffs = ["" if v is None or c.startswith("VizWiz") else f"{v - ref:+.2f}"
                     for c, v, ref in zip(columns, values, reference)]
            what = row[0] + (f", {row[1]}" if row[1] else "")
            lines.append("| " + " | ".join([f"{name} - {what} (paper)"] + ([""] if has_data else []) + diffs) + " |")
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines), rows


def rows_line(number: str, schemes: list[str]) -> str:
    """What each scheme of a table.sh run reproduces, for the dry run."""
    out = []
    for scheme in schemes:
        row = paper_row(number, scheme)
        out.append(f"{scheme} -> " + (f"{row[0]}" + (f" ({row[1]})" if row[1] else "") if row else
                                      "a row of ours (not in the paper's table)"))
    return "; ".join(out)


def bar_chart(title: str, columns: list[str], rows: list[tuple[str, list]], path: str) -> None:
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    n = len(columns)
    fig = Figure(figsize=(2.2 * n + 1, 3.6))  # outside pyplot: no backend chosen or changed
    axes = fig.subplots(1, n, squeeze=False)
    colors = colormaps["tab10"].colors
    for i, col in enumerate(columns):
        ax = axes[0][i]
        heights = [r[1][i] if r[1][i] is not None else 0.0 for r in rows]
        ax.bar(range(len(rows)), heights, color=[colors[j % 10] for j in range(len(rows))])
        ax.set_title(col, fontsize=8)
        ax.set_xticks([])
        ax.tick_params(labelsize=7)
    handles = [Rectangle((0, 0), 1, 1, color=colors[j % 10]) for j in range(len(rows))]
    fig.legend(handles, [r[0] for r in rows], loc="lower center", ncol=min(4, len(rows)), fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.12, 1, 0.95))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", default="2", choices=["1", "2", "3", "4"])
    ap.add_argument("--runs", default="eval/runs")
    ap.add_argument("--paper", default="eval/paper_tables.json")
    ap.add_argument("--out", default="eval/report", help="folder for table<N>.md and table<N>.png")
    ap.add_argument("--rows", help="comma-separated schemes: print which paper row each reproduces, and exit")
    ap.add_argument("--select", help="comma-separated run names: lay only these beside the paper (runs of another "
                                     "table that share the folder stay out)")
    args = ap.parse_args(argv)
    if args.rows is not None:
        print(rows_line(args.table, [s for s in args.rows.split(",") if s]))
        return
    if not os.path.exists(args.paper):
        raise FileNotFoundError(f"{args.paper} not found: run from the repository root or pass --paper")
    with open(args.paper) as f:
        table = json.load(f)["tables"][args.table]
    runs = load_runs(args.runs)
    if args.select is not None:
        wanted = [name for name in args.select.split(",") if name]
        runs = {name: runs[name] for name in wanted if name in runs}
    text, rows = render(table, runs, args.table)
    os.makedirs(args.out, exist_ok=True)
    md_path = os.path.join(args.out, f"table{args.table}.md")
    png_path = os.path.join(args.out, f"table{args.table}.png")
    with open(md_path, "w") as f:
        f.write(text + "\n")
    bar_chart(table["title"], table["columns"], rows, png_path)
    print(text)
    print(f"\nwritten: {md_path}, {png_path}")


if __name__ == "__main__":
    main()
