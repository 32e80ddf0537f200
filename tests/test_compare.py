"""`make compare`'s runner end to end on the tiny preset: runs per scheme and seed, the table of means with intervals
beside the blind baseline, the pairwise tests, the plots and analyses; a second call reuses finished runs; other
settings are refused."""

import json
import re
import statistics
import time

import pytest

from llava.kit.compare import main
from llava.kit.evaluate import headline

pytestmark = pytest.mark.slow


def test_compare_table_reuse_and_settings(tmp_path, capsys):
    out, data = tmp_path / "runs", tmp_path / "data"
    argv = ["--model", "tiny", "--schemes", "lora,asymlora", "--seeds", "0,1", "--steps", "3", "--train", "96",
            "--test", "8", "--pairs", "6", "--out", str(out), "--data", str(data)]
    main(argv)
    table = (out / "compare.md").read_text().splitlines()
    assert table[0].startswith("| scheme | adapter weights | seeds | colour | shape | yes/no | hex | caption | vqg |")
    assert [row.split(" | ")[0] for row in table[2:5]] == ["| blind", "| lora", "| asymlora"]
    assert table[5] == "" and "paired bootstrap" in table[6]
    result = json.loads((out / "compare.json").read_text())
    runs = [headline(r) for r in result["scores"]["lora"]]
    mean = statistics.mean(r["colour"] for r in runs)
    cell = re.fullmatch(r"([\d.]+) \[([\d.]+), ([\d.]+)\][▲▼]?", table[3].split(" | ")[3])  # lora's colour cell
    assert cell and float(cell[1]) == pytest.approx(mean, abs=0.051)  # the mean over its two seeds' 8 questions
    assert float(cell[2]) <= float(cell[1]) <= float(cell[3])
    assert result["adapter_weights"]["lora"] > 0 and set(result["scores"]) == {"lora", "asymlora"}
    assert result["counts"]["test/vqa"] == 24 and result["counts"]["pairs"] == 24  # 8 per cell; 2 x 6 images, 2 questions each
    colour = result["stats"]["colour"]
    assert set(colour["pairs"]) == {"lora vs asymlora"} and 0 < colour["pairs"]["lora vs asymlora"]["p"] <= 1
    assert "| lora vs asymlora |" in (out / "compare_tests.md").read_text()
    # vqa twice the base count, the others half: as many vqa_hex colour questions as vqa has (a quarter of vqa)
    assert [result["counts"][f"train/{t}"] for t in ("vqa", "vqa_hex", "caption", "vqg")] == [192, 48, 48, 48]
    for png in ("compare.png", "analysis/lora/interference.png", "analysis/asymlora/router_load.png"):
        assert (out / png).stat().st_size > 10_000, png

    start = time.time()
    main(argv)  # every run is done: nothing trains again
    assert time.time() - start < 60 and json.loads((out / "compare.json").read_text())["stats"] == result["stats"]
    with pytest.raises(SystemExit, match="not .*'steps': 4"):
        main([*argv[:-6], "--steps", "4", *argv[-4:]])

