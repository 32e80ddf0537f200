"""Every kind of bad input fails with a message naming the file and the sample; --skip_bad_samples counts it."""

import json

import pytest

from llava.data import DataError, SupervisedCollator, SupervisedDataset
from llava.model.image import ImageTransform, clip_image_processor
from tests.helpers.data import conversation, write_images


def make(tmp_path, rows, name="data.json", jsonl=False, **kw):
    path = tmp_path / name
    if jsonl:
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    else:
        path.write_text(json.dumps(rows))
    return path


def dataset(path, tokenizer, folder, **kw):
    return SupervisedDataset(str(path), tokenizer, ImageTransform(clip_image_processor(32)), image_folder=str(folder),
                             image_seq_length=16, model_max_length=256, **kw)


def fetch_all(ds):
    return [ds[i] for i in range(len(ds))]


def test_good_data_loads(tmp_path, tiny_tokenizer):
    names = write_images(tmp_path, 1)
    ds = dataset(make(tmp_path, [conversation(0, names[0]), conversation(1)]), tiny_tokenizer, tmp_path)
    items = fetch_all(ds)
    assert items[0]["pixel_values"].shape == (3, 32, 32) and items[1]["pixel_values"] is None
    batch = SupervisedCollator(tiny_tokenizer.pad_token_id)(items)
    assert batch["pixel_values"].shape[0] == 1 and batch["input_ids"].shape[0] == 2  # text-only batches with images


@pytest.mark.parametrize("case", ["unknown_role", "not_alternating", "empty_reply", "no_image_field"])
def test_structural_errors_name_file_and_sample(tmp_path, tiny_tokenizer, case):
    row = conversation(7)
    if case == "unknown_role":
        row["conversations"][1]["from"] = "robot"
    elif case == "not_alternating":
        row["conversations"][1]["from"] = "human"
    elif case == "empty_reply":
        row["conversations"][1]["value"] = "  "
    elif case == "no_image_field":
        row["conversations"][0]["value"] = "<image>\nhi"
    path = make(tmp_path, [conversation(1), row])
    with pytest.raises(DataError) as err:
        dataset(path, tiny_tokenizer, tmp_path)
    assert str(path) in str(err.value) and "sample s7" in str(err.value)
    expected = {"unknown_role": "unknown role 'robot'", "not_alternating": "do not alternate",
                "empty_reply": "empty reply", "no_image_field": "no 'image'"}[case]
    assert expected in str(err.value)


def test_malformed_json_names_file_and_line(tmp_path, tiny_tokenizer):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(conversation(1)) + "\n" + '{"id": "s2", "conversations": [\n')
    with pytest.raises(DataError, match=r"bad\.jsonl: malformed JSON at line 2"):
        dataset(path, tiny_tokenizer, tmp_path)
    path = tmp_path / "bad.json"
    path.write_text('[\n{"id": "s1"},\n{"id": oops}\n]')
    with pytest.raises(DataError, match=r"bad\.json: malformed JSON at line 3"):
        dataset(path, tiny_tokenizer, tmp_path)


def test_missing_and_corrupt_images(tmp_path, tiny_tokenizer):
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    ds = dataset(make(tmp_path, [conversation(3, "nowhere.png"), conversation(4, "broken.png")]), tiny_tokenizer,
                 tmp_path)
    with pytest.raises(DataError, match=r"data\.json: sample s3: image file .*nowhere\.png not found"):
        ds[0]
    with pytest.raises(DataError, match=r"data\.json: sample s4: image file .*broken\.png is corrupt"):
        ds[1]


def test_template_tokenizer_mismatch(tmp_path, tiny_tokenizer):
    """A tokenizer whose eos is not the template's </s>: LLaVA would silently mask the sample; we refuse."""
    tok = tiny_tokenizer.__class__.from_pretrained(_saved(tiny_tokenizer, tmp_path))
    tok.eos_token = "<pad>"
    ds = dataset(make(tmp_path, [conversation(5)]), tok, tmp_path)
    with pytest.raises(DataError, match=r"data\.json: sample s5: template/tokenizer mismatch"):
        ds[0]


def _saved(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path / "tok")
    return str(tmp_path / "tok")


def test_skip_bad_samples_counts_and_logs(tmp_path, tiny_tokenizer, caplog):
    row = conversation(9)
    row["conversations"][1]["from"] = "robot"
    path = make(tmp_path, [conversation(1), row, conversation(2, "nowhere.png")])
    ds = dataset(path, tiny_tokenizer, tmp_path, skip_bad=True)
    assert len(ds) == 2 and ds.report.total() == 1  # structural: dropped when read
    items = fetch_all(ds)
    assert items[1] is None and ds.report.total() == 2  # missing image: dropped when fetched
    collator = SupervisedCollator(tiny_tokenizer.pad_token_id)
    assert collator(items)["input_ids"].shape[0] == 1 and collator.dropped == 1
    assert "sample s9" in caplog.text and "sample s2" in caplog.text


def test_truncation_is_counted(tmp_path, tiny_tokenizer):
    long_row = conversation(1, question="word " * 400)
    ds = SupervisedDataset(str(make(tmp_path, [long_row])), tiny_tokenizer, None, model_max_length=64)
    with pytest.raises(DataError, match="no supervised token left after truncation"):
        ds[0]
    ok = conversation(2, question="word", answer="yes " * 100)
    ds = SupervisedDataset(str(make(tmp_path, [ok], name="ok.json")), tiny_tokenizer, None, model_max_length=128)
    assert len(ds[0]["input_ids"]) == 128 and ds.truncated == 1
