"""The data recipes on the official download layouts (tests/helpers/recipe_fixtures.py): what each finds, what it reports as
absent, the conversations it writes, the manifest, the pre-flight, and one-line errors for a user's mistakes."""

import json
import os
import subprocess
import sys

import pytest

from llava.data.recipes import mix665k
from llava.data.recipes.__main__ import main
from tests.helpers.recipe_fixtures import SHORT, make_raw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    return str(root), make_raw(str(root))


def run(recipe, raw_dir, out, *extra):
    assert main([recipe, "--raw", raw_dir, "--out", str(out), *extra]) == 0
    rows = json.loads((out / "train.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    return rows, manifest


def test_conversation58k_finds_both_coco_namings_and_reports_absent_images(raw, tmp_path):
    raw_dir, expected = raw
    rows, manifest = run("conversation58k", raw_dir, tmp_path / "c58")
    assert len(rows) == expected["conversation58k"]["present"] == 22
    assert manifest["tasks"] == {"conversation": 22} and manifest["absent_images"] == {"llava_conversation": 2}
    assert manifest["details"]["coco images found in"] == {"coco/train2017": 12, "coco/train2014": 10}
    for row in rows:
        assert os.path.isfile(os.path.join(manifest["image_folder"], row["image"])) and row["task"] == "conversation"
    by_id = {r["id"]: r for r in rows}
    assert by_id["000000000002"]["image"] == "coco/train2014/COCO_train2014_000000000002.jpg"
    assert by_id["000000000003"]["image"] == "coco/train2017/000000000003.jpg"
    assert manifest["preflight"]["checked"] == 22
    inputs = manifest["inputs"]
    assert len(inputs) == 1 and inputs[0]["path"].endswith("conversation_58k.json") and len(inputs[0]["sha256"]) == 64


def test_multidomain_merges_vqav2_per_image_splits_vqg_and_samples_llava(raw, tmp_path):
    raw_dir, expected = raw
    rows, manifest = run("multidomain", raw_dir, tmp_path / "md", "--llava", "12", "--seed", "3")
    vqa = [r for r in rows if r["task"] == "vqa"]
    assert len(vqa) == expected["vqav2"]["images"] - expected["vqav2"]["absent"] == 11
    one = next(r for r in vqa if r["id"] == "vqav2-4")
    assert one["conversations"] == [
        {"from": "human", "value": f"<image>\nQuestion 0 about 4?\n{SHORT}"}, {"from": "gpt", "value": "answer 0"},
        {"from": "human", "value": f"Question 1 about 4?\n{SHORT}"}, {"from": "gpt", "value": "answer 1"},
        {"from": "human", "value": f"Question 2 about 4?\n{SHORT}"}, {"from": "gpt", "value": "answer 2"}]
    vqg = [r for r in rows if r["task"] == "vqg"]
    assert len(vqg) == expected["vqg"]["questions"] == 25  # every question of a row, not one per row
    asked = {r["conversations"][1]["value"] for r in vqg if r["image"].endswith("000000000003.jpg")}
    assert asked == {"What is going on in scene 3?", "Who made thing 3?"}
    assert all(r["conversations"][0]["value"].startswith("<image>\n") for r in vqg)
    llava = [r for r in rows if r["task"] == "llava"]
    assert manifest["absent_images"]["vqg"] == expected["vqg"]["absent_rows"] == 1
    assert manifest["absent_images"]["vqav2"] == 1
    assert len(llava) + manifest["absent_images"].get("llava_instruct", 0) == 12  # 12 sampled, absent ones reported
    assert manifest["tasks"] == {"vqa": 11, "llava": len(llava), "vqg": 25}
    again, _ = run("multidomain", raw_dir, tmp_path / "md2", "--llava", "12", "--seed", "3")
    assert again == rows  # seeded
    other, _ = run("multidomain", raw_dir, tmp_path / "md3", "--llava", "12", "--seed", "4")
    assert {r["id"] for r in other if r["task"] == "llava"} != {r["id"] for r in llava}
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps(["000000000001", "000000000002", "000000000010"]))
    chosen, manifest = run("multidomain", raw_dir, tmp_path / "md4", "--llava-ids", str(ids), "--vqg-splits", "val")
    assert sorted(r["id"] for r in chosen if r["task"] == "llava") == ["llava-000000000001", "llava-000000000002"]
    assert manifest["tasks"]["vqg"] == 9 and manifest["absent_images"]["llava_instruct"] == 1


def test_mix665k_labels_every_source_shape_exactly(raw, tmp_path):
    raw_dir, expected = raw
    rows, manifest = run("mix665k", raw_dir, tmp_path / "mix")
    assert manifest["sources"] == expected["mix665k"]["present"]
    assert manifest["absent_images"] == expected["mix665k"]["absent"] == {"ocr_vqa": 1}
    assert manifest["details"]["labelled by source"] == {
        "llava": 1, "sharegpt": 2, "vqav2": 1, "gqa": 1, "okvqa": 1, "ocr_vqa": 2, "a-okvqa": 1, "textcaps": 1,
        "refcoco": 2, "vg": 2}
    labels = {r["id"]: r["source"] for r in rows}
    assert labels == {"000000000041": "llava", "000000000042": "vqav2", "000000000043": "okvqa", "1a2b3c": "a-okvqa",
                      "000000000045": "refcoco", "000000000046": "refcoco", "2354786": "gqa",
                      "140031996": "ocr_vqa", "011e7e629fb9ae7b": "textcaps", "VG_100K_123": "vg",
                      "VG_100K_2_456": "vg", "i6IyJda_0": "sharegpt", "Q2ZsJ3f_12": "sharegpt"}
    assert all(r["task"] == r["source"] for r in rows)
    assert next(r for r in rows if r["id"] == "i6IyJda_0")["model"] == ""  # the record is kept as it was
    grouped, manifest = run("mix665k", raw_dir, tmp_path / "grouped", "--tasks",
                            "vqa=vqav2,okvqa,gqa,ocr_vqa,a-okvqa gen=llava,sharegpt,textcaps", "--drop", "refcoco,vg")
    assert manifest["tasks"] == {"gen": 4, "vqa": 5}
    assert manifest["details"]["dropped by --drop"] == {"refcoco": 2, "vg": 2}


def test_source_of_on_single_records():
    coco = "coco/train2017/000000000001.jpg"
    assert mix665k.source_of({"conversations": [{"from": "human", "value": "hi"}]}) == "sharegpt"
    assert mix665k.source_of({"image": "textvqa/train_images/a.jpg", "conversations": []}) == "textcaps"
    assert mix665k.source_of({"image": coco, "conversations": [{"from": "human", "value": "<image>\nWhat?"}]}) == "llava"
    with pytest.raises(ValueError, match="in no folder"):
        mix665k.source_of({"image": "sam/a.jpg", "conversations": []})


def test_user_mistakes_end_in_one_line(raw, tmp_path):
    raw_dir, _ = raw

    def cli(*args):
        proc = subprocess.run([sys.executable, "-m", "llava.data.recipes", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        return proc.returncode, proc.stderr.strip().splitlines()

    code, err = cli("mix665k", "--raw", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"))
    assert code == 2 and len(err) == 1 and "llava_v1_5_mix665k.json" in err[0] and "not found" in err[0]
    code, err = cli("mix665k", "--raw", raw_dir, "--out", str(tmp_path / "o"), "--tasks", "vqa=vqav2")
    assert code == 2 and len(err) == 1 and "assigns no task to llava" in err[0]
    code, err = cli("mix665k", "--raw", raw_dir, "--out", str(tmp_path / "o"), "--tasks", "vqa=vqa2 gen=llava")
    assert code == 2 and "unknown source 'vqa2'" in err[-1]
    assert main(["conversation58k", "--raw", raw_dir, "--out", str(tmp_path / "used")]) == 0
    code, err = cli("conversation58k", "--raw", raw_dir, "--out", str(tmp_path / "used"))
    assert code == 2 and "already holds a recipe's output" in err[-1]


def test_a_corrupt_image_stops_the_recipe_at_the_preflight(raw, tmp_path):
    raw_dir, _ = raw
    import shutil

    copy = tmp_path / "raw"
    shutil.copytree(os.path.join(raw_dir, "instruct"), copy / "instruct")
    shutil.copytree(os.path.join(raw_dir, "coco"), copy / "coco")
    (copy / "coco" / "train2017" / "000000000005.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "c58"
    assert main(["conversation58k", "--raw", str(copy), "--out", str(out)]) == 2
    assert not (out / "manifest.json").exists()  # no manifest: the pipeline will not take this output as complete
    problems = (out / "preflight_problems.txt").read_text()
    assert "000000000005.jpg is corrupt" in problems and "sample 000000000005" in problems


def test_preflight_tokenizes_with_a_given_tokenizer(raw, tmp_path, tiny_tokenizer):
    raw_dir, _ = raw
    tiny_tokenizer.save_pretrained(str(tmp_path / "tok"))
    _, manifest = run("mix665k", raw_dir, tmp_path / "mix", "--tokenizer", str(tmp_path / "tok"))
    assert manifest["preflight"] == {"checked": 13, "tokenizer": str(tmp_path / "tok")}
