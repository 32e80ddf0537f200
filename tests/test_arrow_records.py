"""The Arrow-backed records: the same Records, errors and skips as the JSON reader, built once and then mapped."""

import json
import os

import pytest

import llava.data.arrow_records as arrow_records
from llava.data.sources import DataError, SkipReport, read_records
from tests.helpers.data import conversation


def write_mixture(tmp_path, bad=True):
    rows = [conversation(i, image=f"img{i % 3}.png" if i % 2 else None, answer=f"answer {i} " * (i % 5 + 1))
            for i in range(40)]
    if bad:
        rows[3]["conversations"].append({"from": "human", "value": "and?"})  # ends without a reply
    (tmp_path / "a.json").write_text(json.dumps(rows[:20]))
    lines = [json.dumps(r) for r in rows[20:]]
    if bad:
        lines.insert(5, '{"id": "broken", "conversations": [')
    (tmp_path / "b.jsonl").write_text("\n".join(lines) + "\n")
    return f"one={tmp_path / 'a.json'},two={tmp_path / 'b.jsonl'}"


def test_same_records_skips_and_errors_as_the_json_reader_fresh_and_cached(tmp_path, monkeypatch):
    spec = write_mixture(tmp_path)
    with pytest.raises(DataError) as expected:
        read_records(spec)
    want_report = SkipReport()
    want, want_tasks = read_records(spec, skip_bad=True, report=want_report)
    for _attempt in ("fresh", "cached"):
        with pytest.raises(DataError) as got:
            arrow_records.load_records(spec, skip_bad=False, report=SkipReport())
        assert str(got.value) == str(expected.value)
        report = SkipReport()
        table, tasks = arrow_records.load_records(spec, skip_bad=True, report=report)
        assert tasks == want_tasks and report.skipped == want_report.skipped and report.counts == want_report.counts
        assert len(table) == len(want) == 39 and [table[i] for i in range(len(table))] == want
        old_lengths = [sum(len(v.split()) for _, v in r.turns) for r in want]
        assert table.modality_lengths(7) == [n + 7 if r.image else -n for n, r in zip(old_lengths, want)]
        kept = table.without([0, 5])
        assert [kept[i] for i in range(len(kept))] == [r for i, r in enumerate(want) if i not in (0, 5)]

        def no_json_reading(*args, **kwargs):
            raise AssertionError("the cached table was not used")
        monkeypatch.setattr(arrow_records, "read_records", no_json_reading)  # the second round must map the cache


def test_a_changed_file_is_read_again(tmp_path):
    spec = write_mixture(tmp_path, bad=False)
    table, _ = arrow_records.load_records(spec, skip_bad=False, report=SkipReport())
    rows = json.loads((tmp_path / "a.json").read_text())
    rows[0]["conversations"][1]["value"] = "a different reply"
    (tmp_path / "a.json").write_text(json.dumps(rows))
    os.utime(tmp_path / "a.json", ns=(1, 1))  # even an mtime going backwards is a change
    changed, _ = arrow_records.load_records(spec, skip_bad=False, report=SkipReport())
    assert changed[0].turns[1][1] == "a different reply" != table[0].turns[1][1]
