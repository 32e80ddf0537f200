"""The task-expert mutual information of llava.kit.router_specialisation on count tables with a known answer."""

import math

import pytest
import torch

from llava.kit.router_specialisation import mutual_information


def test_tasks_that_pick_experts_alike_share_no_information():
    assert mutual_information(torch.tensor([[30.0, 50, 20], [3, 5, 2], [300, 500, 200]])) == pytest.approx(0, abs=1e-12)


def test_a_top_expert_that_names_the_task_carries_log2_of_the_count():
    assert mutual_information(torch.eye(3) * 7) == pytest.approx(math.log2(3))
    assert mutual_information(torch.tensor([[5.0, 0, 0], [0, 9, 0], [0, 0, 2], [0, 0, 4]])) == \
        pytest.approx(1.5)  # four tasks, three experts: H(E) = 1.5 bits with equal task weights, H(E|T) = 0


def test_a_partial_dependence_matches_the_definition():
    counts = torch.tensor([[8.0, 2], [2, 8]])  # p(e|t) = 0.8 / 0.2, p(e) = 0.5: MI = 1 - H(0.8)
    h = -(0.8 * math.log2(0.8) + 0.2 * math.log2(0.2))
    assert mutual_information(counts) == pytest.approx(1 - h)
    assert mutual_information(torch.tensor([[8.0, 2], [0, 0], [2, 8]])) == pytest.approx(1 - h)  # unseen task dropped


def test_costs_mark_only_differences_that_survive_holm():
    """A coefficient 30 points worse on one column is marked; one identical to the preset is not."""
    from llava.kit.router_specialisation import PRESET_COEF, costs
    from llava.kit.table import COLUMNS

    preset = {c: {f"q{i}": i % 2 == 0 for i in range(200)} for c in COLUMNS}
    worse = {c: dict(v) for c, v in preset.items()}
    for i in range(0, 120, 2):  # 60 of the preset's right answers made wrong: -30 points
        worse[COLUMNS[0]][f"q{i}"] = False
    rows = [{"scheme": "asymlora", "coef": PRESET_COEF, "outcomes": preset},
            {"scheme": "asymlora", "coef": 0.0, "outcomes": worse},
            {"scheme": "asymlora", "coef": 0.5, "outcomes": preset}]
    lines = [line for line in costs(rows).splitlines() if line.startswith("| asymlora")]
    assert lines[0].split(" | ")[2] == "-30.0 *"
    assert "*" not in lines[0].split(" | ", 3)[3] and "*" not in lines[1] and "†" not in lines[1]
    assert lines[1].split(" | ")[2] == "+0.0"
