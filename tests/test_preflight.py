"""Every sample is checked before step 1. A 1,000-sample mixture with 1% bad samples of every kind: without
--skip_bad_samples the run stops before training with a summary; with it, skipped_samples.jsonl lists exactly the
bad ones and training sees every other sample exactly once per epoch, with 0 (2 epochs) and 2 (1 epoch) dataloader workers."""

import json
import os

import pytest
from PIL import Image

from llava.data import DataError
from llava.train.train import train

KINDS = ["missing image", "truncated jpeg", "0-byte image", "no supervised token", "non-utf8 line", "two images"]


def write_mixture(root, n=1_000):
    """Two JSONL files; sample i is bad of kind KINDS[i % 100] when i % 100 < 6: 1% per kind."""
    os.makedirs(root, exist_ok=True)
    for k in range(8):
        Image.new("RGB", (24 + k, 24), (30 * k, 90, 200)).save(os.path.join(root, f"ok{k}.png"))
    full = root / "full.jpg"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(full, quality=90)
    (root / "cut.jpg").write_bytes(full.read_bytes()[:300])
    (root / "empty.png").write_bytes(b"")
    bad, lines = {}, {"a.jsonl": [], "b.jsonl": []}
    for i in range(n):
        name = "a.jsonl" if i % 2 == 0 else "b.jsonl"
        kind = KINDS[i % 100] if i % 100 < 6 else None  # 6 kinds x 1% each
        question, image = "what color is it?", f"ok{i % 8}.png"
        row = {"id": f"s{i}", "image": image,
               "conversations": [{"from": "human", "value": "<image>\n" + question}, {"from": "gpt", "value": "red"}]}
        if kind == "missing image":
            row["image"] = f"missing{i}.png"
        elif kind == "truncated jpeg":
            row["image"] = "cut.jpg"
        elif kind == "0-byte image":
            row["image"] = "empty.png"
        elif kind == "no supervised token":
            row["conversations"][0]["value"] = "<image>\n" + "what color is it? " * 120
        elif kind == "two images":
            row["conversations"][0]["value"] = "<image>\n<image>\n" + question
        line = json.dumps(row).encode()
        if kind == "non-utf8 line":
            line = line.replace(b"what", b"wh\xffat")
        lines[name].append(line)
        if kind:
            bad[f"s{i}"] = (name, len(lines[name]), kind)
    for name, rows in lines.items():
        (root / name).write_bytes(b"\n".join(rows) + b"\n")
    spec = f"a={root / 'a.jsonl'},b={root / 'b.jsonl'}"
    return spec, bad


def run(spec, folder, out, *extra):
    return train(["--model_name_or_path", "tiny", "--data_path", spec, "--image_folder", str(folder),
                  "--output_dir", str(out), "--lora_enable", "True", "--lora_r", "2", "--lora_alpha", "4",
                  "--per_device_train_batch_size", "128", "--learning_rate", "1e-4", "--activation_checkpointing", "False",
                  "--logging_steps", "50", "--save_strategy", "no", "--report_to", "none", "--use_cpu", "True",
                  "--disable_tqdm", "True", "--model_max_length", "256", "--record_ranks", "True", *extra])


@pytest.mark.slow
def test_bad_samples_stop_the_run_before_training_or_are_skipped_exactly(tmp_path):
    spec, bad = write_mixture(tmp_path / "data")
    assert len(bad) == 60
    with pytest.raises(DataError) as err:
        run(spec, tmp_path / "data", tmp_path / "refused")
    message = str(err.value)
    assert "60 of 1000 samples cannot be used" in message and "a.jsonl: sample" in message and "... and 40 more" in message
    for reason in ("not found: 10", "empty (0 bytes): 10", "corrupt: 10", "no supervised token: 10",
                   "not UTF-8: 10", "more than one <image>: 10"):
        assert reason in message, message
    assert not (tmp_path / "refused" / "trainer_state.json").exists()

    good_ids = [f"s{i}" for i in range(0, 1_000, 2) if f"s{i}" not in bad]  # reading order: a.jsonl, then b.jsonl
    good_ids += [f"s{i}" for i in range(1, 1_000, 2) if f"s{i}" not in bad]
    for workers, epochs in (("0", 2), ("2", 1)):
        out = tmp_path / f"run{workers}"
        run(spec, tmp_path / "data", out, "--skip_bad_samples", "True", "--dataloader_num_workers", workers,
            "--num_train_epochs", str(epochs))
        skipped = [json.loads(line) for line in (out / "skipped_samples.jsonl").read_text().splitlines()]
        assert len(skipped) == 60
        named = {s["id"] for s in skipped if "id" in s}  # pre-flight finds: by sample id
        lines = {s["where"] for s in skipped if "where" in s}  # read-time finds: by file and line
        expect_named = {i for i, (_, _, kind) in bad.items() if kind not in ("non-utf8 line", "two images")}
        assert named == expect_named
        root = tmp_path / "data"
        assert lines == {f"{root / name}: sample {'line ' + str(n) if kind == 'non-utf8 line' else sid} (line {n})"
                         for sid, (name, n, kind) in bad.items() if kind in ("non-utf8 line", "two images")}
        record = json.loads((out / "rank_records" / "rank0.json").read_text())
        seen = [i for b in record["batches"] for i in b["indices"]]
        assert len(seen) == epochs * 940 and sorted(set(seen)) == list(range(940))  # every good sample, once an epoch
        for epoch in range(epochs):
            assert sorted(seen[epoch * 940:(epoch + 1) * 940]) == list(range(940))
        assert len(good_ids) == 940
