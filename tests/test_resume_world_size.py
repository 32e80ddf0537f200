"""Resume on another number of processes (ZeRO-2, ZeRO-3), a model built from parts, the scripts' path.

A chain over one epoch (48 samples, global batch 8, 6 steps): an uninterrupted 2-process run; resumed from its
checkpoint-2 on 1 process (steps 3-6); that run's checkpoint-4 resumed on 2 processes (steps 5-6). Every resumed
step's loss equals the uninterrupted run's, and the per-rank sample records over the chain cover the epoch exactly
once: the data order continues where it stopped whatever the world size. Both engines' runs of one link share one
launch (the scripts' own arguments, one start-up per process).
"""

import shutil

import pytest

from llava.train.optimizer_state import FILE
from tests.helpers.recipe_runs import finetune_env, finetune_together, recipe_parts

pytestmark = pytest.mark.slow
STEPS = 6
LOOSEST = {}  # engine -> the largest loss difference measured (printed: the closing note quotes it)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return recipe_parts(tmp_path_factory, per_task=16)


ENGINES = ("zero2", "zero3")


@pytest.fixture(scope="module")
def chains(parts, tmp_path_factory):
    """Both engines' chains in three launches, one per link (tests/helpers/recipe_runs.py's finetune_together):
    the uninterrupted 2-process runs, their checkpoint-2 resumed on 1 process, that run's checkpoint-4 on 2."""
    root = tmp_path_factory.mktemp("chains")
    settings = {"steps": STEPS, "env": {"SAVE_TOTAL_LIMIT": "10"}}
    links = {}
    for link, nproc, source in (("full", 2, None), ("on1", 1, ("full", "checkpoint-2")),
                                ("on2", 2, ("on1", "checkpoint-4"))):
        runs = {}
        for engine in ENGINES:
            out = root / engine / link
            extra = {}
            if source:  # a copy of the earlier link's checkpoint in the new OUTPUT, resumed as `last`
                out.mkdir()
                shutil.copytree(root / engine / source[0] / source[1], out / source[1])
                extra = {"extra": "--resume_from_checkpoint last"}
            runs[engine] = finetune_env(parts, out, nproc, deepspeed=engine, **settings, **extra)
        (root / link).mkdir()
        links[link] = finetune_together(runs, nproc, root / link)
    return root, links


@pytest.mark.parametrize("deepspeed", ENGINES)
def test_resume_2_to_1_to_2_processes_continues_exactly(chains, deepspeed):
    root, links = chains
    full, full_rec, _ = links["full"][deepspeed]
    assert (root / deepspeed / "full" / "checkpoint-2" / FILE).exists()  # the whole optimizer state, any world size
    one, one_rec, one_stdout = links["on1"][deepspeed]
    assert "8 per device x 1 processes" in one_stdout
    two, two_rec, _ = links["on2"][deepspeed]

    worst = 0.0
    for logs, first in ((one, 3), (two, 5)):
        assert [h["step"] for h in logs] == list(range(1, STEPS + 1))  # earlier steps from the trainer state
        for got, want in zip(logs[first - 1:], full[first - 1:], strict=True):
            assert got["learning_rate"] == pytest.approx(want["learning_rate"])
            worst = max(worst, abs(got["loss"] - want["loss"]))
    LOOSEST[deepspeed] = worst
    print(f"{deepspeed}: largest loss difference over the resumed steps {worst:.2e}")
    assert worst <= 1e-4

    def seen(records, steps):
        return [i for r in records for b in r["batches"] if b["step"] in steps for i in b["indices"]]
    epoch = seen(full_rec, {1, 2}) + seen(one_rec, {3, 4}) + seen(two_rec, {5, 6})
    assert sorted(epoch) == list(range(48))  # every sample once, none twice
    assert sorted(seen(one_rec, {3, 4, 5, 6})) == sorted(seen(full_rec, {3, 4, 5, 6}))
