"""The modality-grouped sampler and the optional-dependency messages."""

import pytest

from llava.data.sampler import ModalityLengthGroupedSampler
from llava.train.extras import require_extra


def test_batches_hold_one_modality_and_cover_every_index():
    lengths = [30 + i for i in range(24)] + [-(5 + i) for i in range(12)]  # 24 image samples, 12 text-only
    sampler = ModalityLengthGroupedSampler(lengths, batch_size=4, seed=1)
    order = list(sampler)
    assert sorted(order) == list(range(36)) and len(sampler) == 36
    batches = [order[k:k + 4] for k in range(0, 36, 4)]
    assert all(len({lengths[i] > 0 for i in batch}) == 1 for batch in batches)  # never image and text mixed
    sampler.set_epoch(1)
    assert list(sampler) != order  # reshuffled per epoch


def test_missing_extra_names_the_extra():
    with pytest.raises(ImportError, match=r"pip install 'llava-asymlora\[wandb\]'"):
        require_extra("surely_not_installed_pkg", "wandb", "--report_to wandb")
