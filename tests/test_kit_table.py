"""The comparison table's cells, marks and pairwise tests on synthetic outcomes whose answer is known."""

import numpy as np

from llava.kit.table import BETTER, WORSE, summarise


def runs(right: np.ndarray) -> list[dict]:
    """One outcomes.json per seed, every column alike: {column: {unit: right}}."""
    columns = ("colour", "shape", "yes/no", "hex", "caption", "vqg", "pairs acc", "pairs acc+")
    return [{c: {f"q{u}": bool(v) for u, v in enumerate(seed)} for c in columns} for seed in right]


def test_a_planted_gap_is_marked_against_lora_and_a_copy_is_not():
    rng = np.random.default_rng(0)
    lora = rng.random((3, 200)) < 0.5
    better, worse = lora.copy(), lora.copy()
    for s in range(3):
        better[s, np.flatnonzero(~lora[s])[:40]] = True  # +20 points on every seed
        worse[s, np.flatnonzero(lora[s])[:40]] = False
    outcomes = {"lora": runs(lora), "copy": runs(lora.copy()), "better": runs(better), "worse": runs(worse)}
    blind = runs(rng.random((1, 200)) < 0.3)[0]
    text, tests, stats = summarise(outcomes, blind, {"lora": 10, "copy": 10, "better": 10, "worse": 10})
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in text.splitlines()[2:7]}
    assert list(rows) == ["blind", "lora", "copy", "better", "worse"]
    assert rows["better"][3].endswith(BETTER) and rows["worse"][3].endswith(WORSE)
    assert not rows["copy"][3].endswith((BETTER, WORSE)) and not rows["lora"][3].endswith((BETTER, WORSE))
    mean, low, high = stats["colour"]["intervals"]["better"]
    assert abs(mean - 100 * better.mean()) < 1e-9 and low < mean < high
    assert stats["colour"]["pairs"]["lora vs copy"]["p"] == 1.0
    assert stats["colour"]["pairs"]["lora vs better"]["diff"] == -20.0
    assert "blind" not in {k for pair in stats["colour"]["pairs"] for k in pair.split(" vs ")}
    assert "| lora vs better | -20.0 |" in tests and len(stats["colour"]["pairs"]) == 6
