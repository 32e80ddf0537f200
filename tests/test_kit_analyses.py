"""The kit's two follow-up analyses end to end on the tiny preset, beside one `make compare` root: router
specialisation at two balance coefficients (the preset's runs come from the compare root) and MixLoRA retrained with
yes/no singles, compared seed for seed with the compare root's runs."""

import json

import pytest

from llava.kit import router_specialisation, yes_no_singles

pytestmark = pytest.mark.slow

RECIPE = ["--model", "tiny", "--steps", "3", "--train", "96", "--test", "8", "--pairs", "6"]


def test_router_specialisation_and_yes_no_singles(tmp_path, capsys):
    compare, data = tmp_path / "compare", tmp_path / "data"
    recipe = [*RECIPE, "--data", str(data)]
    router_specialisation.main(["--out", str(tmp_path / "router"), "--compare", str(compare), "--coefs", "0,0.05",
                                "--schemes", "asymlora", *recipe])
    rows = json.loads((tmp_path / "router" / "router.json").read_text())
    assert [(r["scheme"], r["coef"]) for r in rows] == [("asymlora", 0.0), ("asymlora", 0.05)]
    assert (compare / "asymlora" / "seed0" / "eval" / "outcomes.json").exists()  # the preset's run lives there
    config = json.loads((tmp_path / "router" / "coef0" / "asymlora" / "seed0" / "llava_adapters.json").read_text())
    assert config["balance_coef"] == 0.0
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
    assert (tmp_path / "data-singles0.5" / "manifest.json").exists()  # its own mixture, beside the compare one
    assert "| pairs acc+ |" in (tmp_path / "singles" / "singles.md").read_text()
    with pytest.raises(SystemExit, match="share"):
        yes_no_singles.main(["--out", str(tmp_path / "x"), "--compare", str(compare), "--share", "0", *recipe])
