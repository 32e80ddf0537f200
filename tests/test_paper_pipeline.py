"""scripts/paper/table.sh: the dry run with nothing downloaded, and Table 4 end to end on the tiny preset over the
download fixtures (data recipe -> training -> VizWiz and TextVQA -> report), through a failing stage and a kill
during evaluation, each re-run continuing without retraining."""

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.helpers.eval_fixtures import make_textvqa, make_vizwiz
from tests.helpers.recipe_fixtures import make_raw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def table(number, env, **kwargs):
    return subprocess.run(["bash", "scripts/paper/table.sh", str(number)], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=900, **kwargs)


def test_dry_run_of_table_3_with_nothing_downloaded(tmp_path):
    env = {"DRY_RUN": "1", "NUM_GPUS": "8", "WORK": str(tmp_path / "work"), "RAW": str(tmp_path / "raw"),
           "EVAL_ROOT": str(tmp_path / "eval"), "PYTHON": sys.executable, "OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""}
    proc = table(3, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "would run data mix665k" in out and f"missing: {tmp_path}/raw/llava_v1_5_mix665k.json" in out
    for scheme in ("lora", "moe_lora", "asymlora"):
        assert f"would run train {scheme}:" in out
        for bench in ("mme", "gqa", "textvqa", "vizwiz"):
            assert f"would run eval {scheme} {bench}:" in out
        assert f"eval {scheme} mmvet: pending" in out
    assert out.count("--nproc_per_node 8") == 3 and "missing: MODEL=./checkpoints/llava-v1.5-7b" in out
    assert "start: llava-v1.5-7b (./checkpoints/llava-v1.5-7b), as the authors' script; the authors' run settings" in out
    assert "time on 8 x H100" in out and "assumed: 665,298 records" in out
    # the authors' preset on 8 GPUs: global batch 8, so 665,298 records take 83,162 optimizer steps, and the notes say it
    assert "train asymlora   1 epoch, 83,162 steps of 8:" in out
    assert "global batch 8, the authors' 2 (one GPU, 1 x 2 accumulation)" in out
    assert "adapters and routers: bf16, updated with no fp32 copy" in out
    assert "VizWiz: val scored here" in out and "evaluation: LLaVA-1.5's question files and prompts, fp16" in out
    total = [line for line in out.splitlines() if line.strip().startswith("total:")]
    assert len(total) == 1 and "GPU-hours" in total[0]
    assert not (tmp_path / "work").exists()  # a dry run writes nothing
    with_judge = table(3, {**env, "OPENAI_BASE_URL": "http://127.0.0.1:9", "OPENAI_API_KEY": "k", "SCHEMES": "asymlora",
                           "NUM_GPUS": "1"})
    assert with_judge.returncode == 0 and "would run eval asymlora mmvet:" in with_judge.stdout
    assert "train asymlora   1 epoch, 332,649 steps of 2:" in with_judge.stdout  # the authors' batch, kept on 1 GPU
    assert "the authors' 2 (" not in with_judge.stdout


def dry_run(number, tmp_path, **extra):
    env = {"DRY_RUN": "1", "NUM_GPUS": "8", "WORK": str(tmp_path / "work"), "RAW": str(tmp_path / "raw"),
           "EVAL_ROOT": str(tmp_path / "eval"), "PYTHON": sys.executable, "OPENAI_BASE_URL": "", "OPENAI_API_KEY": "",
           **extra}
    proc = table(number, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def commands(out: str) -> dict[str, str]:
    """'would run train X:' -> the launch command printed under it."""
    found, lines = {}, out.splitlines()
    for i, line in enumerate(lines):
        if "] would run " in line:
            what = line.split("] would run ", 1)[1].rstrip(":")
            found[what] = next((x.strip() for x in lines[i + 1:] if x.strip().startswith(sys.executable)
                                or x.strip().startswith(".venv")), "")
    return found


def test_dry_run_of_table_4_starts_from_llava_and_builds_the_papers_moe_lora(tmp_path):
    out = dry_run(4, tmp_path)
    runs = commands(out)
    trains = [k for k in runs if k.startswith("train ")]
    assert trains == ["train lora", "train lora_vqa", "train lora_llava", "train lora_vqg", "train moe_lora_experts",
                      "train moe_lora", "train asymlora"]
    for what in trains:
        assert "--model_name_or_path ./checkpoints/llava-v1.5-7b" in runs[what], what
    work = tmp_path / "work"
    assert f"--data_path {work}/data/task-vqa.json" in runs["train lora_vqa"]
    assert "--tasks vqg" in runs["data vqg"] and f"--out {work}/data/task-vqg.json" in runs["data vqg"]
    # the paper's MoE-LoRA: N=3, one LoRA per data set of Table 4 (VQA, LLaVA-15k, VQG)
    assert (rf"--experts {work}/checkpoints/lora_vqa\,{work}/checkpoints/lora_llava\,{work}/checkpoints/lora_vqg "
            f"--out {work}/checkpoints/moe_lora_experts-combined") in runs["combine moe_lora_experts"]
    assert "moe_lora_experts: 3 LoRA experts, one per data set (vqa=vqa llava=llava vqg=vqg); the paper: N=3" in out
    assert (f"--init_adapters {work}/checkpoints/moe_lora_experts-combined --train_routers_only True "
            "--freeze_mm_mlp_adapter True") in runs["train moe_lora_experts"]
    assert "global batch 8 instead of 2" in out  # the authors' batch cannot be kept on 8 GPUs: said
    assert "rows: lora -> LoRA; moe_lora_experts -> MoE-LoRA; moe_lora -> a row of ours" in out
    assert (rf"--select work-lora\,work-moe_lora_experts\,work-moe_lora\,work-asymlora --out {work}/report" in out
            or rf"--out {work}/report --select work-lora\,work-moe_lora_experts\,work-moe_lora\,work-asymlora" in out)
    vicuna = dry_run(4, tmp_path, START="vicuna", SCHEMES="asymlora", PRESET="paper")
    assert "--model_name_or_path ./checkpoints/vicuna-7b-v1.5" in commands(vicuna)["train asymlora"]
    assert "start: Vicuna-7B + the stage-1 projector" in vicuna and "PRESET=paper" in vicuna


def test_every_flag_the_pipeline_sets_has_its_source_in_docs_paper(tmp_path):
    out = dry_run(4, tmp_path, NUM_GPUS="1")
    flags = set()
    for line in out.splitlines():
        if "-m llava.train.train" in line:
            flags |= {word for word in line.split("-m llava.train.train", 1)[1].split() if word.startswith("--")}
    doc = open(os.path.join(ROOT, "docs", "paper.md")).read()
    table = doc.split("## Every setting of the pipeline and its source", 1)[1].split("\n## ", 1)[0]
    assert len(flags) > 40 and not sorted(f for f in flags if f"`{f}`" not in table)


def test_dry_run_of_table_1_lists_its_rows(tmp_path):
    out = dry_run(1, tmp_path, WORK="")
    assert ("rows: lora_vqa -> Single LoRA (VQA); lora_gen -> Single LoRA (Gen); lora -> Single LoRA (VQA+Gen); "
            "moe_lora_experts -> Multiple LoRA (MoE) (VQA+Gen); asymlora -> a row of ours") in out
    runs = commands(out)
    # Tables 1 and 4 share one WORK by default (the same data): trainings and evaluations are made once; each
    # report lists its own table's rows
    assert "--out ./runs/paper/multidomain/checkpoints/moe_lora_experts-combined" in out
    assert "bash scripts/eval/mme.sh ./runs/paper/multidomain/checkpoints/asymlora multidomain-asymlora" in out
    assert (r"--select multidomain-lora_vqa\,multidomain-lora_gen\,multidomain-lora\,multidomain-moe_lora_experts\,"
            "multidomain-asymlora") in out
    assert [k for k in runs if k.startswith("train ")] == [
        "train lora_vqa", "train lora_gen", "train lora", "train lora_llava", "train lora_vqg", "train moe_lora_experts",
        "train asymlora"]
    assert r"--tasks llava\,vqg" in runs["data gen"] and "task-gen.json" in runs["data gen"]


@pytest.mark.slow
def test_table_4_end_to_end_resumes_after_a_failed_stage_and_a_kill(tmp_path):
    raw, evals, work = tmp_path / "raw", tmp_path / "eval", tmp_path / "work"
    make_raw(str(raw))
    make_vizwiz(str(evals))  # TextVQA not there yet: its stage fails
    env = {"MODEL": "tiny", "RAW": str(raw), "WORK": str(work), "EVAL_ROOT": str(evals),
           "SCHEMES": "asymlora moe_lora_experts",
           "BENCHMARKS": "vizwiz textvqa mmvet", "EXTRA_ARGS": "--max_steps 4", "PYTHON": sys.executable,
           "OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""}
    first = table(4, env)
    assert first.returncode == 1
    log = work / "logs" / "eval-asymlora-textvqa.log"
    assert f"error: stage 'eval asymlora textvqa' failed (exit 1); log: {log}" in first.stderr
    assert "TextVQA_0.5.1_val.json" in log.read_text()
    assert (work / "eval" / "work-asymlora" / "vizwiz.json").exists()
    trained = work / "checkpoints" / "asymlora" / "llava_adapters.safetensors"
    stamp = trained.stat().st_mtime_ns

    make_textvqa(str(evals))
    second = subprocess.Popen(["bash", "scripts/paper/table.sh", "4"], cwd=ROOT, env={**os.environ, **env},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen = []
    for line in second.stdout:
        seen.append(line)
        if "running eval asymlora textvqa" in line:
            os.killpg(second.pid, signal.SIGKILL)  # the pipeline and the evaluation it started
            break
    second.wait(timeout=60)
    assert second.returncode == -signal.SIGKILL, seen
    assert not (work / "eval" / "work-asymlora" / "textvqa.json").exists()

    third = table(4, env)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "train asymlora: done" in third.stdout and "eval asymlora vizwiz: done" in third.stdout
    assert "running train" not in third.stdout and trained.stat().st_mtime_ns == stamp  # not retrained
    assert "eval asymlora mmvet: pending" in third.stdout
    report = (work / "report" / "table4.md").read_text()
    assert "| AsymLoRA (paper) | 23.65 | 78.1 | 34.8 | 41.35 | 38.1 | 54.25 |" in report
    ours = [line for line in report.splitlines() if line.startswith("| work-asymlora (ours) |")]
    diff = [line for line in report.splitlines() if line.startswith("| work-asymlora - AsymLoRA (paper) |")]
    assert len(ours) == 1 and len(diff) == 1 and "|  |" not in ours[0]  # every column of Table 4 measured
    assert (work / "report" / "table4.png").stat().st_size > 5000
    assert (work / "answers" / "textvqa" / "work-asymlora.jsonl").exists()  # answers kept with the run
    # the paper's MoE-LoRA: per-task LoRAs, combined, routers trained; laid beside the paper's MoE-LoRA row
    assert "train moe_lora_experts: done" in third.stdout and "combine moe_lora_experts: done" in third.stdout
    assert any(line.startswith("| work-moe_lora_experts - MoE-LoRA (paper) |") for line in report.splitlines())
    experts = json.loads((work / "checkpoints" / "moe_lora_experts" / "llava_adapters.json").read_text())
    assert experts["scheme"] == "moe_lora" and experts["num_experts"] == 3
    # VizWiz test-dev in EvalAI's upload format, named in the report
    upload = json.loads((evals / "vizwiz" / "answers_upload" / "work-asymlora.json").read_text())
    assert [set(row) for row in upload] == [{"image", "answer"}] * 2
    assert [row["image"] for row in upload] == ["VizWiz_test_00000000.jpg", "VizWiz_test_00000001.jpg"]
    assert f"work-asymlora: VizWiz test-dev answers for EvalAI in {evals}/vizwiz/answers_upload/work-asymlora.json" in report
    assert "work-asymlora: from tiny (START=llava: llava-v1.5-7b), PRESET=authors" in report
    assert "work-asymlora: trained: 4 optimizer steps, global batch 2 (1 processes); adapters bf16, updated with no " \
           "fp32 copy" in report
    assert "work-asymlora: answered in fp32, batch 8 (LLaVA-1.5: fp16, one question at a time)" in report
    assert "work-asymlora: VizWiz: val, scored here; the paper's columns are EvalAI's test-dev breakdown" in report
