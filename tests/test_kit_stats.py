"""The kit's intervals and paired tests on synthetic outcomes whose answer is known, and against scipy."""

import numpy as np
import pytest
from scipy import stats

from llava.kit.stats import as_array, compare_schemes, holm, interval, paired_test


def outcomes(rate: float, seeds: int, units: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((seeds, units)) < rate).astype(float)


def test_identical_schemes_give_p_one():
    a = outcomes(0.6, 3, 200, 0)
    test = paired_test(a, a.copy())
    assert test["p"] == 1.0 and test["diff"] == 0.0 and test["low"] == test["high"] == 0.0


def test_a_planted_twenty_point_difference_on_200_questions_is_significant():
    a = outcomes(0.6, 3, 200, 1)
    b = a.copy()
    for s in range(3):  # 40 of each seed's wrong answers made right: +20 points on every seed
        wrong = np.flatnonzero(a[s] == 0)
        b[s, np.random.default_rng(s).choice(wrong, 40, replace=False)] = 1
    test = paired_test(b, a)
    assert test["diff"] == pytest.approx(20.0)
    assert test["p"] < 0.01 and test["low"] > 10
    assert paired_test(a, b)["diff"] == pytest.approx(-20.0)


def test_a_difference_one_seed_reverses_is_not_significant():
    a = outcomes(0.5, 3, 200, 2)
    b = a.copy()
    for s, sign in enumerate((1, 1, -1)):  # +20, +20, -20 points: the ranking depends on the training run
        pool = np.flatnonzero(a[s] == (0 if sign > 0 else 1))[:40]
        b[s, pool] = 1 if sign > 0 else 0
    assert paired_test(b, a)["p"] > 0.05


def test_the_paired_test_keeps_its_false_positive_rate_under_the_null():
    """Two schemes with the same 70% accuracy, independent errors: with one seed (the exact test) about 5% of tests
    reject at 0.05; with three seeds the two-way bootstrap counts the question noise once within the seeds and again
    through resampling them, so it is conservative (it rejects less often, never more)."""
    def rate(seeds: int) -> float:
        return float(np.mean([paired_test(outcomes(0.7, seeds, 200, 2 * k), outcomes(0.7, seeds, 200, 2 * k + 1),
                                          draws=2000)["p"] < 0.05 for k in range(200)]))
    assert 0.01 <= rate(1) <= 0.10
    assert rate(3) <= 0.05


def test_one_seed_p_agrees_with_mcnemar_exact_test():
    """With one seed the paired test is McNemar's exact test of the discordant questions, and the bootstrap agrees
    with it when many questions differ: scipy's binomial test is the reference."""
    a = np.zeros((1, 200))
    b = np.zeros((1, 200))
    a[0, :30] = 1  # 30 questions only a gets right, 12 only b, 100 both
    b[0, 30:42] = 1
    a[0, 42:142] = b[0, 42:142] = 1
    ours = paired_test(a, b, draws=20_000)["p"]
    exact = stats.binomtest(30, 42, 0.5).pvalue
    assert exact < 0.05 and ours == pytest.approx(exact)
    boot = paired_test(np.tile(a, (2, 1)), np.tile(b, (2, 1)), draws=20_000)["p"]  # two identical seeds: bootstrap
    assert boot == pytest.approx(exact, abs=0.02)


def test_one_seed_with_few_discordant_questions_is_not_called_significant():
    """4 questions right for a only, none for b: McNemar's exact p is 2 / 2**4 = 0.125 (the bootstrap's own p would be
    ~0.04, as resampling 200 questions misses all four only ~2% of the time)."""
    a = np.zeros((1, 200))
    b = np.zeros((1, 200))
    a[0, :104] = 1
    b[0, 4:104] = 1
    test = paired_test(a, b)
    assert test["p"] == pytest.approx(stats.binomtest(4, 4, 0.5).pvalue) == pytest.approx(0.125)
    assert test["diff"] == pytest.approx(2.0)
    assert paired_test(a, a)["p"] == 1.0
    with pytest.raises(ValueError, match="0/1"):
        paired_test(a * 2, b)


def test_interval_matches_scipy_bootstrap_on_one_seed():
    x = outcomes(0.65, 1, 300, 3)
    mean, low, high = interval(x, draws=20_000)
    ref = stats.bootstrap((x[0],), np.mean, n_resamples=20_000, method="percentile", random_state=0)
    assert mean == pytest.approx(100 * x.mean())
    assert low == pytest.approx(100 * ref.confidence_interval.low, abs=0.8)
    assert high == pytest.approx(100 * ref.confidence_interval.high, abs=0.8)


def test_seed_spread_widens_the_interval():
    steady = np.tile(outcomes(0.6, 1, 200, 4), (3, 1))
    spread = steady.copy()
    spread[0, :60] = 0  # one seed 30 points worse on the same questions
    spread[2, 60:120] = 1
    _, lo1, hi1 = interval(steady)
    _, lo2, hi2 = interval(spread)
    assert hi2 - lo2 > 1.5 * (hi1 - lo1)


def test_holm_adjusts_step_down_and_stays_monotone():
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03})
    assert adjusted == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})


def test_compare_schemes_pairs_every_scheme_on_the_same_units():
    base = outcomes(0.5, 3, 100, 5)
    better = np.maximum(base, outcomes(0.5, 3, 100, 6))
    cells = {"x": {"m": base}, "y": {"m": base.copy()}, "z": {"m": better}}
    result = compare_schemes(cells, draws=2000)["m"]
    assert set(result["pairs"]) == {("x", "y"), ("x", "z"), ("y", "z")}
    assert result["pairs"]["x", "y"]["p_holm"] == 1.0
    assert result["pairs"]["x", "z"]["p_holm"] < 0.01 and result["pairs"]["x", "z"]["diff"] < 0


def test_as_array_refuses_seeds_that_answered_other_questions():
    assert as_array([{"q1": True, "q2": False}, {"q2": True, "q1": True}]).tolist() == [[1, 0], [1, 1]]
    with pytest.raises(ValueError, match="other units"):
        as_array([{"q1": True}, {"q2": True}])
