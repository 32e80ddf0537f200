"""Checkpoints written by the code before the package reorganisation (tests/fixtures/checkpoints_6f1b538, and the
script that wrote them there) load with the current code and give the logits that code gave: task heads, routed
AsymLoRA and MixLoRA."""

import os

import pytest
import torch
from safetensors.torch import load_file

from llava.adapters.attached import adapter_config
from llava.checkpoint import Base, Checkpoint, checkpoint_of, load_checkpoint_model
from llava.model.builder import load_model
from tests.helpers.training import logits

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "checkpoints_6f1b538")


@pytest.mark.parametrize("name", ["tasks", "routed", "mixlora"])
def test_a_checkpoint_written_before_the_reorganisation_gives_the_same_logits(name):
    expected = load_file(os.path.join(HERE, "expected_logits.safetensors"))[name]
    model, tokenizer, _ = load_checkpoint_model(os.path.join(HERE, name))
    config = adapter_config(model)
    assert config.scheme == {"tasks": "asymlora", "routed": "asymlora", "mixlora": "mixlora"}[name]
    task = torch.tensor([1, 2]) if name == "tasks" else None
    got = logits(model, tokenizer, task)[:, -4:]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    base, _, _ = load_model("tiny")  # the control: the adapters and projector change the logits
    assert (logits(base, tokenizer)[:, -4:] - expected).abs().max() > 1e-3
    # what it was loaded from rides on the model typed: the base record of the old file, its adapters' config
    loaded = checkpoint_of(model)
    assert isinstance(loaded, Checkpoint) and loaded.adapters == config and isinstance(loaded.base, Base)
    assert (loaded.base.model_name_or_path, loaded.base.template, loaded.base.image_aspect_ratio) == ("tiny", "v1", "pad")
    assert loaded.base.task_names == ("shape", "color", "yesno")


def test_a_base_record_reads_what_it_writes_and_names_a_bad_file(tmp_path):
    base = Base("tiny", vision_tower="clip", model_seed=3, template="llava_v1", image_aspect_ratio="resize",
                task_names=("a", "b"), bits=4, combined_from=("/x", "/y"))
    base.save(str(tmp_path))
    assert Base.read(str(tmp_path)) == base
    assert '"version": "llava_v1"' in (tmp_path / "llava_base.json").read_text()  # the key every version wrote
    (tmp_path / "llava_base.json").write_text('{"model_name_or_path": "tiny", "colour": 1}')
    with pytest.raises(ValueError, match=r"llava_base.json: unknown keys \['colour'\]"):
        Base.read(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="has no llava_base.json"):
        Base.read(str(tmp_path / "nowhere"))
