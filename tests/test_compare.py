"""`make compare`'s runner end to end on the tiny preset: runs per scheme and seed, the table of means with intervals
beside the blind baseline, the pairwise tests, the plots and analyses; a second call reuses finished runs; other
settings are refused. Then the kit's two follow-up analyses on that compare root, as a user runs them after `make
compare`: router specialisation at two balance coefficients (the preset's runs are the root's) and MixLoRA retrained
with yes/no singles, compared seed for seed with the root's runs."""

import json
import math
import re
import statistics
import time

import pytest

from llava.kit import router_specialisation, yes_no_singles
from llava.kit.compare import main
from llava.kit.evaluate import headline

pytestmark = pytest.mark.slow

RECIPE = ["--model", "tiny", "--steps", "3", "--train", "96", "--test", "8", "--pairs", "6"]


@pytest.fixture(scope="module")
def compare_root(tmp_path_factory):
    """One `make compare` root (lora and asymlora, two seeds) that both tests read; made once."""
    tmp = tmp_path_factory.mktemp("kit")
    out, data = tmp / "runs", tmp / "data"
    argv = ["--schemes", "lora,asymlora", "--seeds", "0,1", *RECIPE, "--out", str(out), "--data", str(data)]
    main(argv)
    return tmp, argv


def test_compare_table_reuse_and_settings(compare_root):
    tmp, argv = compare_root
    out = tmp / "runs"
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
    # the routers' task split while training, per routed scheme and seed (lora has none); 4 tasks, 3 experts
    assert result["router_mi"]["lora"] == [None, None]
    routed = result["router_mi"]["asymlora"]
    assert [r["step"] for r in routed] == [3, 3] and all(len(r["layers"]) == 2 for r in routed)  # tiny: 2 layers
    for r in routed:
        assert 0 <= min(r["layers"].values()) and r["mean"] <= r["max"] <= math.log2(3) + 1e-6
        assert r["specialised_layers"] == sum(v >= 0.5 for v in r["layers"].values())
    markdown = (out / "compare.md").read_text()
    row = next(line for line in markdown.splitlines() if line.startswith("| asymlora | ") and "bits" not in line
               and " / " in line)
    assert row.split(" | ")[1] == " / ".join(f"{r['mean']:.3f}" for r in routed)
    assert "| lora | " not in markdown.split("Routers:")[1]
    for png in ("compare.png", "analysis/lora/interference.png", "analysis/asymlora/router_load.png"):
        assert (out / png).stat().st_size > 10_000, png

    start = time.time()
    main(argv)  # every run is done: nothing trains again
    assert time.time() - start < 60 and json.loads((out / "compare.json").read_text())["stats"] == result["stats"]
    with pytest.raises(SystemExit, match="not .*'steps': 4"):
        main([*argv[:-4], "--steps", "4", *argv[-4:]])


def test_router_specialisation_and_yes_no_singles(compare_root, tmp_path):
    compare, data = compare_root[0] / "runs", compare_root[0] / "data"
    recipe = [*RECIPE, "--data", str(data)]
    router_specialisation.main(["--out", str(tmp_path / "router"), "--compare", str(compare), "--coefs", "0,0.05",
                                "--schemes", "asymlora", "--variant", "fast=--router_lr 2e-2", *recipe])
    rows = json.loads((tmp_path / "router" / "router.json").read_text())
    assert [(r["scheme"], r["coef"], r["variant"]) for r in rows] == [
        ("asymlora", 0.0, None), ("asymlora", 0.05, None), ("asymlora", 0.05, "fast")]
    assert (compare / "asymlora" / "seed0" / "eval" / "outcomes.json").exists()  # the preset's run lives there
    config = json.loads((tmp_path / "router" / "coef0" / "asymlora" / "seed0" / "llava_adapters.json").read_text())
    assert config["balance_coef"] == 0.0
    # a variant: the preset's coefficient with its flags added, trained in its own folder, tested against the preset
    fast = tmp_path / "router" / "fast" / "asymlora" / "seed0"
    assert json.loads((fast / "llava_adapters.json").read_text())["balance_coef"] == 0.05
    logged = [h for h in json.loads((fast / "trainer_state.json").read_text())["log_history"] if "loss" in h]
    assert logged and all(h["router_learning_rate"] > h["learning_rate"] for h in logged if h["learning_rate"] > 0)
    table = (tmp_path / "router" / "router.md").read_text()
    assert "| asymlora | fast: --router_lr 2e-2 |" in table.split("difference to the preset")[1]
    # what the routers did while training, from the runs' tensorboard events: at 10x the rate they move further
    training = {r["variant"]: r["training"] for r in rows if r["coef"] == 0.05}
    assert training["fast"]["weight_change_median"] > training[None]["weight_change_median"] > 0
    assert all(0 < t["grad_share_min"] <= t["grad_share_mean"] <= t["grad_share_max"] < 1 for t in training.values())
    assert "| layers with MI >= 0.5 |" in table
    for r in rows:
        assert 0 <= r["mi_mean"] <= r["mi_ceiling"] and len(r["mi_bits"]) == len(r["mi_answer_bits"]) > 0
        low, mean, high = r["accuracy"]["colour"][1], r["accuracy"]["colour"][0], r["accuracy"]["colour"][2]
        assert low <= mean <= high
    for png in ("router_mi.png", "router_mi_answers.png", "coef0/asymlora/router_load.png"):
        assert (tmp_path / "router" / png).stat().st_size > 5_000, png

    yes_no_singles.main(["--out", str(tmp_path / "singles"), "--compare", str(compare), "--share", "0.5",
                         "--seeds", "0", *recipe])
    [row] = json.loads((tmp_path / "singles" / "singles.json").read_text())
    assert row["scheme"] == "mixlora" and [s["seed"] for s in row["per_seed"]] == [0]
    assert row["clears_bar_every_seed"] == (row["per_seed"][0]["singles"] >= row["bar"])
    assert (compare / "mixlora" / "seed0" / "eval" / "outcomes.json").exists()
    assert (compare_root[0] / "data-singles0.5" / "manifest.json").exists()  # its own mixture, beside the compare one
    assert "| pairs acc+ |" in (tmp_path / "singles" / "singles.md").read_text()
    with pytest.raises(SystemExit, match="share"):
        yes_no_singles.main(["--out", str(tmp_path / "x"), "--compare", str(compare), "--share", "0", *recipe])
