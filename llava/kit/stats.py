"""Confidence intervals and paired tests for the kit's table, from per-question outcomes.

A cell of the table (scheme x metric) is a [seeds, units] array of 0/1 outcomes: a unit is a held-out question, or
for paired acc+ an image (both its questions right). Every scheme answers the same units, and seed s of one scheme
is paired with seed s of another (same data order, same initial draw).

- Interval: the two-way bootstrap of the mean, seeds and units resampled independently with replacement (so both
  the seed-to-seed spread and the finite question set widen it); 95% percentile interval.
- Paired test of schemes a and b: the same bootstrap of the mean difference a - b with seeds and units drawn once for
  both (paired); two-sided p = 2 * min(P(d* <= 0), P(d* >= 0)) with the +1 correction, capped at 1. Identical
  outcomes give p = 1. With 3 seeds a difference that flips sign on one seed cannot reach a small p: seed noise is
  part of the question asked ("would another training run rank them alike?"). The two-way resampling counts the
  question noise twice (within each seed, and again through the resampled seeds), so the test is conservative: on
  synthetic null data with 3 seeds it rejected none of 200 at 0.05 (tests/test_kit_stats.py). With one seed the p is McNemar's
  exact test on the discordant units instead: the bootstrap's p is too small when only a handful of questions differ
  (4 questions right for a only: bootstrap p ~0.04, exact 0.125), and the exact test is the textbook one there.
- Many pairs: Holm's step-down adjustment over the scheme pairs of one metric, then significance at 0.05.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

DRAWS = 10_000
ALPHA = 0.05


def _draws(seeds: int, units: int, draws: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, seeds, (draws, seeds)), rng.integers(0, units, (draws, units))


def _counts(idx: np.ndarray, size: int) -> np.ndarray:
    """[draws, size] how often each index was drawn, per draw (one bincount over row-offset indices)."""
    rows = np.arange(len(idx))[:, None] * size
    return np.bincount((idx + rows).ravel(), minlength=len(idx) * size).reshape(len(idx), size)


def _boot_means(x: np.ndarray, s_idx: np.ndarray, u_idx: np.ndarray) -> np.ndarray:
    """Mean of x[resampled seeds][:, resampled units] per draw, without the [draws, S, U] array: unit resampling is
    a count-weighted mean per seed, seed resampling a count-weighted mean of those."""
    seeds, units = x.shape
    out = np.empty(len(s_idx))
    for start in range(0, len(s_idx), 1000):
        per_seed = _counts(u_idx[start:start + 1000], units) @ x.T / units  # [d, S]
        out[start:start + 1000] = (per_seed * _counts(s_idx[start:start + 1000], seeds)).sum(1) / seeds
    return out


def as_array(runs: list[dict[str, bool]], units: list[str] | None = None) -> np.ndarray:
    """[seeds, units] 0/1 from one {unit: right} per seed; all seeds must hold the same units."""
    units = units or sorted(runs[0])
    for k, run in enumerate(runs):
        if set(run) != set(units):
            raise ValueError(f"seed index {k} answered other units than the first ({len(run)} vs {len(units)})")
    return np.array([[float(run[u]) for u in units] for run in runs])


def interval(x: np.ndarray, draws: int = DRAWS, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high) in percent: the mean over seeds and units and its 95% two-way bootstrap interval."""
    means = _boot_means(x, *_draws(*x.shape, draws, seed))
    low, high = np.percentile(means, [2.5, 97.5])
    return 100 * float(x.mean()), 100 * float(low), 100 * float(high)


def paired_test(a: np.ndarray, b: np.ndarray, draws: int = DRAWS, seed: int = 0) -> dict[str, float]:
    """{diff, low, high, p}: mean difference a - b in points, its 95% interval and two-sided p (paired bootstrap)."""
    if a.shape != b.shape:
        raise ValueError(f"paired test needs the same seeds x units, got {a.shape} and {b.shape}")
    d = a - b
    means = _boot_means(d, *_draws(*d.shape, draws, seed))
    low, high = np.percentile(means, [2.5, 97.5])
    p = min(1.0, 2 * min(np.sum(means <= 0) + 1, np.sum(means >= 0) + 1) / (draws + 1))
    if len(d) == 1:
        p = mcnemar_exact(d[0])
    return {"diff": 100 * float(d.mean()), "low": 100 * float(low), "high": 100 * float(high), "p": float(p)}


def mcnemar_exact(d: np.ndarray) -> float:
    """Two-sided exact McNemar p of one seed's paired 0/1 outcomes, given as d = a - b per unit: a binomial test
    of the units only a got right against those only b got right, at 1/2."""
    if not np.isin(d, (-1, 0, 1)).all():
        raise ValueError("McNemar's test needs 0/1 outcomes (differences in -1, 0, 1)")
    only_a, only_b = int(np.sum(d > 0)), int(np.sum(d < 0))
    n = only_a + only_b
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1))
    return min(1.0, 2 * tail / 2 ** n)


def holm(pvalues: dict) -> dict:
    """Holm's step-down adjusted p-values (same keys): controls the family-wise error over the pairs of a metric."""
    order = sorted(pvalues, key=pvalues.get)
    adjusted, running = {}, 0.0
    for rank, key in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * pvalues[key]))
        adjusted[key] = running
    return adjusted


def compare_schemes(cells: dict[str, dict[str, np.ndarray]], draws: int = DRAWS) -> dict:
    """{metric: {"intervals": {scheme: (mean, low, high)}, "pairs": {(a, b): {diff, low, high, p, p_holm}}}} for
    cells {scheme: {metric: [seeds, units]}}; every scheme pair of a metric, Holm-adjusted within the metric."""
    schemes = list(cells)
    metrics = [m for m in cells[schemes[0]] if all(m in cells[s] for s in schemes)]
    out = {}
    for metric in metrics:
        intervals = {s: interval(cells[s][metric], draws) for s in schemes}
        pairs = {(a, b): paired_test(cells[a][metric], cells[b][metric], draws)
                 for a, b in itertools.combinations(schemes, 2)}
        adjusted = holm({k: v["p"] for k, v in pairs.items()})
        for key, test in pairs.items():
            test["p_holm"] = adjusted[key]
        out[metric] = {"intervals": intervals, "pairs": pairs}
    return out
