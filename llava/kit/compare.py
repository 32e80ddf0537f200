"""`make compare`: every adapter scheme on the same easy-vqa mixture, matched trainable budgets, 3 seeds, intervals.

Schemes (small preset, the mixture of llava.kit.easy_vqa_mixture: vqa, vqa_hex, caption, vqg): plain LoRA on all
linears; MoE-LoRA, AsymLoRA routed (paper preset: shared A, routed B heads, one router per MLP block, hydra balance,
biased routers), AsymLoRA with one B head per task (paper Eq. 2), AsymLoRA task x expert (Eq. 3) and MixLoRA on the
MLP with plain LoRA on attention. Ranks are chosen so every scheme trains about the same number of adapter weights;
the measured counts are in the table. Each run trains in its own process (log in RUN/train.log), is skipped when its
scores exist and resumes from its newest checkpoint when interrupted. Runs go `--workers` at a time, the cores split
between them: a 135M model's matmuls at batch 2 do not keep two threads busy, so on 2 cores two one-thread runs side
by side finish sooner than two two-thread runs one after the other (`bench/compare_workers.py`, docs/benchmarks.md).
Held out: 200 questions per reported cell (colour, shape, yes/no, hex, caption, vqg) and 2 x 100 paired images, from
easy-vqa's test split. Then: per scheme and column the mean over seeds with a 95% interval and marks where it differs
from lora by a paired test (kit/table.py, kit/stats.py), every pair's test (compare_tests.md), the blind
baseline, a bar chart, the interference matrices and router load of seed 0's lora and asymlora runs, and each routed
scheme's task-expert mutual information as it trained (router health, logged to tensorboard; kit/router_mi.py).

python -m llava.kit.compare --out runs/compare [--seeds 0,1,2] [--steps 200] [--schemes lora,asymlora]
                                 [--yes-no-turns 8] [--yes-no-singles 0.25] [--test 200] [--pairs 100] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import torch
from safetensors import safe_open

from llava.adapters import presets
from llava.adapters.io import weights_path
from llava.analysis.interference import analyse
from llava.console import progress_bars_only_on_a_terminal
from llava.kit.easy_vqa_mixture import KIT_MAX_TOKENS, build
from llava.kit.evaluate import blind_outcomes, blind_scores, evaluate
from llava.kit.plots import plot_comparison
from llava.kit.router_mi import mutual_information_table, report_to, run_mutual_information
from llava.kit.small import SMALL_VERSION
from llava.kit.table import summarise
from llava.kit.workers import in_workers
from llava.model.cpu_dtype import cpu_compute_dtype
from llava.train.args import adapter_flags

# Each arm's adapter settings: a scheme's preset placement (llava.adapters.presets) at a rank matched to ~140k adapter
# weights per transformer layer (counts measured below); alpha = 2r throughout.
SCHEMES: dict[str, dict] = {
    "lora": presets.variant("lora", 14),
    "moe_lora": presets.variant("moe_lora", 6, router_bias=True),  # AsymLoRA's biased router, one difference fewer
    "asymlora": presets.variant("asymlora", 8),
    # one B head per data task and no routers (so no router placement): the mixture on the MLP, as the others
    "asymlora_tasks": dict(scheme="asymlora", r=7, alpha=14, num_tasks=-1, mixture_targets=list(presets.MLP)),
    "asymlora_task_experts": presets.variant("asymlora", 4, num_tasks=-1, num_experts=2),
    "mixlora": presets.variant("mixlora", 8, num_experts=10, mixture_targets=list(presets.MLP)),
}
INTERFERENCE_SCHEMES = ("lora", "asymlora")


def train_args(scheme: str, mixture: str, images: str, out: str, seed: int, steps: int, model: str = "small",
               batch: int = 8) -> list[str]:
    version = SMALL_VERSION if model == "small" else "v1"
    args = ["--model_name_or_path", model, "--version", version, "--data_path", mixture,
            "--image_folder", images, "--lora_enable", "True", *adapter_flags(dict(SCHEMES[scheme], dropout=0.0)),
            "--learning_rate", "2e-3",
            "--warmup_ratio", "0.05", "--lr_scheduler_type", "cosine", "--max_steps", str(steps),
            "--per_device_train_batch_size", str(batch), "--model_max_length", str(KIT_MAX_TOKENS),
            "--group_by_modality_length", "True", "--logging_steps", str(min(10, steps)),
            "--save_steps", str(max(1, steps // 2)), "--save_total_limit", "1",
            # router health (and so the routers' task split that the table reports) is logged to a tracker
            "--report_to", report_to(),
            "--output_dir", out, "--seed", str(seed)]
    # the small preset's projector is aligned with the LM's word embeddings (kit/word_projector.py): kept frozen
    args += ["--freeze_mm_mlp_adapter", "True"] if model == "small" else ["--mm_projector_lr", "2e-3"]
    if model == "small" and not torch.cuda.is_available():  # bf16 base where the CPU runs bf16 natively (faster)
        args += ["--bf16", str(cpu_compute_dtype() == "bf16"), "--use_cpu", "True"]
    if any(os.path.isdir(os.path.join(out, d)) for d in os.listdir(out) if d.startswith("checkpoint-")):
        args += ["--resume_from_checkpoint", "last"]
    return args


def train_sizes(n: int) -> dict[str, int]:
    """Training samples per task: vqa 2n, the others n/2. yes/no (half of vqa) is the skill that needs the most
    optimizer steps, captions and questions are learnt from few; and vqa_hex then has as many colour questions as vqa,
    so neither convention of the conflict outvotes the other (docs/experiment_kit.md)."""
    return {"vqa": 2 * n, "vqa_hex": n // 2, "caption": n // 2, "vqg": n // 2}


def adapter_weights(checkpoint: str) -> int:
    """Trainable adapter (and router) weights in a checkpoint, projector excluded."""
    with safe_open(weights_path(checkpoint), "pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys() if "multi_modal_projector" not in k)


def run_one(scheme, seed, manifest, images, root, steps, model="small", batch=8, extra=()) -> dict:
    """Train (in a child process, which inherits this process's thread share) and evaluate one scheme x seed; `extra`
    training flags go last, so they override the scheme's (e.g. ["--balance_coef", "0"])."""
    out = os.path.join(root, scheme, f"seed{seed}")
    done = os.path.join(out, "eval", "scores.json")
    if evaluated(root, scheme, seed):
        with open(done) as f:
            return json.load(f)
    os.makedirs(out, exist_ok=True)
    if weights_path(out) is None:
        args = [*train_args(scheme, manifest["mixture"], images, out, seed, steps, model, batch), *extra]
        with open(os.path.join(out, "train.log"), "a") as log:
            proc = subprocess.run([sys.executable, "-m", "llava.train.train", *args], stdout=log,
                                  stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            raise RuntimeError(f"{scheme} seed {seed} failed (exit {proc.returncode}); see {out}/train.log")
    return evaluate(out, manifest, os.path.join(out, "eval"))


def evaluated(root: str, scheme: str, seed: int) -> bool:
    return os.path.exists(os.path.join(root, scheme, f"seed{seed}", "eval", "scores.json"))


def workers_for(jobs: list[tuple], workers: int) -> int:
    """`workers` while a `run_one` job has a run to train or evaluate; 1 (no pool of processes to start, each of
    which imports the stack) once every run is done and a call only rebuilds its tables."""
    left = [job for job in jobs if job[0] is run_one and not evaluated(job[5], job[1], job[2])]
    return workers if left else 1


def check_settings(root: str, settings: dict) -> None:
    """Finished runs are reused only under the settings they were made with."""
    path = os.path.join(root, "settings.json")
    if os.path.exists(path):
        with open(path) as f:
            before = json.load(f)
        if before != settings:
            raise SystemExit(f"{root} holds runs made with {before}, not {settings}: use another --out or delete it")
    os.makedirs(root, exist_ok=True)
    with open(path, "w") as f:
        json.dump(settings, f)


def parser() -> argparse.ArgumentParser:
    """The runner's flags; the recipe ones (all but --out, --seeds, --schemes, --workers) also drive the analyses that
    train on the kit's recipe (llava.kit.router_specialisation, llava.kit.yes_no_singles)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/compare")
    ap.add_argument("--data", default="playground/data/mixture")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--schemes", default=",".join(SCHEMES))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=2,
                    help="2 x 200 rather than 4 x 100 or 8 x 50: yes/no needs optimizer steps, not samples (docs)")
    ap.add_argument("--model", default="small", help="small (the kit's preset) or tiny (tests)")
    ap.add_argument("--train", type=int, default=1200, help="n: training samples vqa 2n, every other task n/2")
    ap.add_argument("--yes-no-turns", type=int, default=8, help="questions per training yes/no conversation (4, 8)")
    ap.add_argument("--yes-no-singles", type=float, default=0.0,
                    help="share of training yes/no images asked one question instead of a conversation (0-1)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                    help="runs side by side, the cores split between them (same recipe; threads only change the "
                         "order of float sums)")
    ap.add_argument("--test", type=int, default=200,
                    help="held-out questions per reported cell (colour, shape, yes/no, hex, caption, vqg)")
    ap.add_argument("--pairs", type=int, default=100, help="images per subtask of the paired yes/no benchmark")
    return ap


def compare_settings(args) -> dict:
    """What a finished run was made with: runs are reused only under the same settings (check_settings)."""
    data = f"vqa x2, vqa_hex, caption and vqg x1/2, yes/no as {args.yes_no_turns}-question conversations"
    if args.yes_no_singles:
        data += f", {args.yes_no_singles:g} of them as single questions"
    return {"model": args.model, "steps": args.steps, "batch": args.batch, "train": args.train, "test": args.test,
            "pairs": args.pairs, "projector": "word-aligned, frozen" if args.model == "small" else "trained",
            "model_max_length": KIT_MAX_TOKENS, "data": data}


def kit_manifest(data: str, args) -> dict:
    """Build (or rebuild, identically) the kit's mixture; a yes/no-singles mixture gets its own folder beside `data`
    so it never overwrites the files other runs were trained on. The held-out sets do not depend on the training
    options (easy_vqa_mixture draws each split from its own stream)."""
    if args.yes_no_singles:
        data = f"{data.rstrip('/')}-singles{args.yes_no_singles:g}"
    cells = {"shape": args.test, "color": args.test, "yesno": args.test, "vqa_hex": args.test,
             "caption": args.test, "vqg": args.test, "pairs": args.pairs}
    return build(data, args.train, args.test, seed=0, train_sizes=train_sizes(args.train),
                 yes_no_turns=args.yes_no_turns, test_sizes=cells, yes_no_singles=args.yes_no_singles)


def read_outcomes(root: str, scheme: str, seeds: list[int]) -> list[dict]:
    runs = []
    for seed in seeds:
        with open(os.path.join(root, scheme, f"seed{seed}", "eval", "outcomes.json")) as f:
            runs.append(json.load(f))
    return runs


def main(argv=None):
    progress_bars_only_on_a_terminal()  # a log file gets no carriage-return floods
    args = parser().parse_args(argv)
    start = time.time()
    schemes = args.schemes.split(",")
    unknown = [s for s in schemes if s not in SCHEMES]
    if unknown:
        raise SystemExit(f"unknown schemes {unknown}; choose from {list(SCHEMES)}")
    if not 0 <= args.yes_no_singles <= 1:
        raise SystemExit(f"--yes-no-singles is a share between 0 and 1, not {args.yes_no_singles}")
    seeds = [int(s) for s in args.seeds.split(",")]
    check_settings(args.out, compare_settings(args))
    manifest = kit_manifest(args.data, args)
    images = manifest["pairs_root"]
    pairs = [(scheme, seed) for seed in seeds for scheme in schemes]
    jobs = [(run_one, scheme, seed, manifest, images, args.out, args.steps, args.model, args.batch)
            for scheme, seed in pairs]
    # seed 0's interference analyses are queued as soon as their run is done, so they fill the cores the last runs
    # leave idle
    follow = {k: (interference_of, scheme, seed, args.out, manifest, images) for k, (scheme, seed) in enumerate(pairs)
              if scheme in INTERFERENCE_SCHEMES and seed == seeds[0]}
    in_workers(jobs, workers_for(jobs, args.workers), "compare runs", follow)
    outcomes = {s: read_outcomes(args.out, s, seeds) for s in schemes}
    counts = {s: adapter_weights(os.path.join(args.out, s, f"seed{seeds[0]}")) for s in schemes}
    text, tests, stats = summarise(outcomes, blind_outcomes(manifest), counts)
    routers = {s: [run_mutual_information(os.path.join(args.out, s, f"seed{k}")) for k in seeds] for s in schemes}
    if routers_table := mutual_information_table(routers):
        text += ("\n\nRouters: task-expert mutual information at the last logged window of training (bits; 0: every "
                 "task picks the experts alike; log2(min(tasks, experts)) when the top expert names the task)\n\n"
                 + routers_table)
    plot_comparison(stats, os.path.join(args.out, "compare.png"))
    with open(os.path.join(args.out, "compare.json"), "w") as f:
        json.dump({"stats": stats, "blind": blind_scores(manifest), "adapter_weights": counts, "steps": args.steps,
                   "seeds": seeds, "counts": manifest["counts"], "router_mi": routers,
                   "scores": {s: [json.load(open(os.path.join(args.out, s, f"seed{k}", "eval", "scores.json")))
                                  for k in seeds] for s in schemes}}, f, indent=1)
    for name, body in (("compare.md", text), ("compare_tests.md", tests)):
        with open(os.path.join(args.out, name), "w") as f:
            f.write(body + "\n")
    print(text)
    print(f"wrote {args.out}/compare.md, compare_tests.md, compare.json, compare.png, analysis/*/ in "
          f"{(time.time() - start) / 60:.1f} min")


def interference_of(scheme: str, seed: int, root: str, manifest: dict, images: str) -> None:
    """The interference matrices and router load of one finished run (kept once written)."""
    out = os.path.join(root, "analysis", scheme)
    if not os.path.exists(os.path.join(out, "interference.json")):
        analyse(os.path.join(root, scheme, f"seed{seed}"), manifest["mixture"], images, out)


if __name__ == "__main__":
    main()
