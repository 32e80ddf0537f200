"""The report lays each run beside the paper's row that its scheme reproduces in that table (Table 1's rows by scheme
and data), with the run's start, settings and VizWiz split in notes."""

import json

from llava.eval.report import main


def write_run(runs, name, scheme, table, metrics, **info):
    folder = runs / name
    folder.mkdir(parents=True)
    for bench, values in metrics.items():
        (folder / f"{bench}.json").write_text(json.dumps({"benchmark": bench, **values}))
    (folder / "run.json").write_text(json.dumps({"scheme": scheme, "table": table, "pending": [], **info}))


def test_table_1_rows_by_scheme_and_data(tmp_path, capsys):
    runs = tmp_path / "runs"
    vizwiz = {"unanswerable": 40.0, "yes/no": 70.0, "number": 20.0, "other": 30.0, "average": 35.0}
    for name, scheme in [("t1-lora_vqa", "lora_vqa"), ("t1-moe_lora_experts", "moe_lora_experts"),
                         ("t1-asymlora", "asymlora")]:
        write_run(runs, name, scheme, 1, {"textvqa": {"accuracy": 50.0}, "vizwiz": vizwiz,
                                          "mme": {"perception": 1300.0, "cognition": 300.0}},
                  start="llava", model="./checkpoints/llava-v1.5-7b", preset="authors",
                  vizwiz_upload="eval/vizwiz/answers_upload/x.json" if scheme == "asymlora" else "")
    main(["--table", "1", "--runs", str(runs), "--out", str(tmp_path / "report")])
    lines = (tmp_path / "report" / "table1.md").read_text().splitlines()
    # Single LoRA on VQA: TextVQA 38.08 in the paper; its VizWiz columns are test-dev's, ours val's: no difference
    assert "| t1-lora_vqa - Single LoRA, VQA (paper) |  | +11.92 |  |  |  |  |" in "\n".join(lines)
    assert any(line.startswith("| t1-moe_lora_experts - Multiple LoRA (MoE), VQA+Gen (paper) |") for line in lines)
    assert not any(line.startswith("| t1-asymlora - ") for line in lines)  # no AsymLoRA row in the paper's Table 1
    assert "- t1-asymlora: VizWiz test-dev answers for EvalAI in eval/vizwiz/answers_upload/x.json" in lines
    assert "- t1-lora_vqa: from ./checkpoints/llava-v1.5-7b (START=llava: llava-v1.5-7b), PRESET=authors" in lines
    assert any("t1-asymlora: VizWiz: val, scored here; the paper's columns are EvalAI's test-dev" in line
               for line in lines)


def test_notes_say_every_deviation_per_row(tmp_path):
    """Start checkpoint, adapter precision, global batch and steps (from the checkpoint's run_summary.json), eval
    dtype and batch (from the answers), VizWiz split and the MM-Vet judge."""
    runs, ckpt = tmp_path / "runs", tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "run_summary.json").write_text(json.dumps({
        "optimizer_steps": 83163, "world_size": 8, "global_batch": 8, "precision": "bf16",
        "adapter_precision": "bf16, updated with no fp32 copy", "deepspeed": False}))
    generation = {"dtype": "fp16", "batch_size": 8, "conv_mode": "v1"}
    write_run(runs, "t3-asymlora", "asymlora", 3,
              {"textvqa": {"accuracy": 50.0, "generation": generation},
               "vizwiz": {"average": 40.0, "split": "val", "generation": generation},
               "mmvet": {"total": 30.0, "judge_model": "gpt-4o-mini", "generation": generation}},
              start="llava", model="./checkpoints/llava-v1.5-7b", preset="authors", checkpoint=str(ckpt))
    main(["--table", "3", "--runs", str(runs), "--out", str(tmp_path / "report")])
    lines = (tmp_path / "report" / "table3.md").read_text().splitlines()
    assert ("- t3-asymlora: trained: 83,163 optimizer steps, global batch 8 (8 processes), the authors' 2; adapters "
            "bf16, updated with no fp32 copy") in lines
    assert "- t3-asymlora: answered in fp16, batch 8 (LLaVA-1.5: fp16, one question at a time)" in lines
    assert "- t3-asymlora: MM-Vet judge: gpt-4o-mini (the paper: GPT-4, MM-Vet's grader)" in lines
    assert "- t3-asymlora: from ./checkpoints/llava-v1.5-7b (START=llava: llava-v1.5-7b), PRESET=authors" in lines


def test_table_4_moe_lora_is_the_separately_trained_baseline(tmp_path, capsys):
    runs = tmp_path / "runs"
    metrics = {"textvqa": {"accuracy": 50.0}, "vizwiz": {"average": 40.0}}
    write_run(runs, "t4-moe_lora_experts", "moe_lora_experts", 4, metrics)
    write_run(runs, "t4-moe_lora", "moe_lora", 4, metrics)
    main(["--table", "4", "--runs", str(runs), "--out", str(tmp_path / "report")])
    text = (tmp_path / "report" / "table4.md").read_text()
    assert "| t4-moe_lora_experts - MoE-LoRA (paper) |" in text and "| t4-moe_lora (ours) |" in text
    assert "| t4-moe_lora - " not in text  # the jointly trained MoE-LoRA is a row of ours only


def test_rows_line_for_the_dry_run(capsys):
    main(["--table", "3", "--rows", "lora,moe_lora,asymlora"])
    assert capsys.readouterr().out.strip() == "lora -> LoRA; moe_lora -> MoE-LoRA; asymlora -> AsymLoRA"
