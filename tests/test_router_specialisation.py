"""The task-expert mutual information (llava.adapters.state, read by the kit's router specialisation and by the
trainer's router health) on count tables with a known answer and against scikit-learn's."""

import math

import pytest
import torch

from llava.adapters.state import mutual_information


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


def test_with_as_many_tokens_per_task_it_is_scikit_learns_mutual_information():
    """Tasks weighted equally is the plain MI of the count table when every task has as many tokens."""
    from sklearn.metrics import mutual_info_score

    generator = torch.Generator().manual_seed(0)
    for tasks, experts in [(2, 2), (3, 3), (4, 3), (3, 8)]:
        counts = torch.rand(tasks, experts, generator=generator) ** 3
        counts = (counts / counts.sum(1, keepdim=True) * 900).floor().long()  # token counts (scikit-learn's are ints)
        counts[:, 0] += 1000 - counts.sum(1)  # every task exactly 1000 tokens
        ours = mutual_information(counts)
        assert ours == pytest.approx(mutual_info_score(None, None, contingency=counts.numpy()) / math.log(2), rel=1e-9)
        assert 0 < ours <= math.log2(min(tasks, experts))


def test_costs_mark_only_differences_that_survive_holm():
    """A coefficient 30 points worse on one column is marked; one identical to the preset is not."""
    from llava.kit.router_report import PRESET_COEF, costs
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


def test_router_training_reads_a_runs_tensorboard_events(tmp_path):
    """Hand-written events: at each step the routers' gradient norms of all layers together over the model's, and the
    median layer's last weight change."""
    from torch.utils.tensorboard import SummaryWriter

    from llava.kit.router_training import router_training

    assert router_training(str(tmp_path)) is None  # no events: nothing to report
    writer = SummaryWriter(str(tmp_path / "runs" / "stamp"))
    for step, total, layers in [(10, 10.0, (0.3, 0.4)), (20, 1.0, (0.06, 0.08))]:  # shares 0.05 and 0.1
        writer.add_scalar("train/grad_norm", total, step)
        for layer, norm in enumerate(layers):
            writer.add_scalar(f"train/router_health/layer{layer}/grad_norm", norm, step)
    for layer, change in enumerate((0.2, 0.9, 0.5)):
        writer.add_scalar(f"train/router_health/layer{layer}/weight_change", 99.0, 10)  # not the last: ignored
        writer.add_scalar(f"train/router_health/layer{layer}/weight_change", change, 20)
    writer.close()
    got = router_training(str(tmp_path))
    assert got == pytest.approx({"grad_share_mean": 0.075, "grad_share_min": 0.05, "grad_share_max": 0.1,
                                 "weight_change_median": 0.5})


def test_router_seeds_pools_a_setting_over_its_seeds(tmp_path, capsys):
    """Two one-seed studies read back: per seed the MI and the layers at half a bit; pooled over seeds and questions
    a column 30 points worse in both is significant, an unchanged one is not."""
    import json

    from llava.kit import router_seeds
    from llava.kit.router_report import PRESET_COEF
    from llava.kit.table import COLUMNS

    preset = {c: {f"q{i}": i % 2 == 0 for i in range(200)} for c in COLUMNS}
    worse = {c: dict(v) for c, v in preset.items()}
    for i in range(0, 120, 2):
        worse[COLUMNS[0]][f"q{i}"] = False
    studies = []
    for seed, bits in ((0, [0.6, 0.7, 0.1]), (1, [0.2, 0.5, 0.0])):
        study = tmp_path / f"study{seed}"
        rows = [{"scheme": "asymlora", "coef": PRESET_COEF, "variant": None, "mi_mean": 0.01,
                 "mi_bits": {"0": 0.0, "1": 0.01, "2": 0.02}},
                {"scheme": "asymlora", "coef": PRESET_COEF, "variant": "v", "mi_mean": sum(bits) / 3,
                 "mi_bits": {str(k): b for k, b in enumerate(bits)}}]
        for root, result in ((tmp_path / "compare", preset), (study / "v", worse)):
            (root / "asymlora" / f"seed{seed}" / "eval").mkdir(parents=True)
            (root / "asymlora" / f"seed{seed}" / "eval" / "outcomes.json").write_text(json.dumps(result))
        (study / "settings.json").write_text(json.dumps({"seed": seed}))
        (study / "router.json").write_text(json.dumps(rows))
        studies.append(str(study))
    router_seeds.main(["--variant", "v", "--compare", str(tmp_path / "compare"), *studies])
    out = capsys.readouterr().out
    assert "| 0 | 0.010 | 0 of 3 | 0.467 | 2 of 3 |" in out and "| 1 | 0.010 | 0 of 3 | 0.233 | 1 of 3 |" in out
    first = next(line for line in out.splitlines() if line.startswith(f"| {COLUMNS[0]} |"))
    assert "| -30.0 [" in first and float(first.rsplit("(", 1)[1].rstrip(") |")) < 0.05  # Holm-adjusted
    second = next(line for line in out.splitlines() if line.startswith(f"| {COLUMNS[1]} |"))
    assert "| +0.0 [+0.0, +0.0] |" in second
