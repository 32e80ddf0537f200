"""The yes/no ablation's inputs: the same images asked four questions or one, and a fresh projector in stage-1 form."""

import json

import pytest
import torch

from llava.kit.easy_vqa_mixture import build
from llava.kit.yes_no_ablation import new_projector, train_args, yes_no_files
from llava.model.weights import read_state_dict

pytest.importorskip("easy_vqa", reason="the easy-vqa package is in the dev extra (make install)")


def test_single_and_four_turn_files_hold_the_same_images(tmp_path):
    manifest = build(str(tmp_path / "data"), n_train=16, n_test=4, seed=1, yes_no_turns=4)  # as the ablation builds
    files = yes_no_files(manifest, str(tmp_path))
    four = json.load(open(files["four-turn"]))
    single = json.load(open(files["single"]))
    assert len(four) == len(single) == 8  # half of vqa's 16 samples
    assert [r["image"] for r in four] == [r["image"] for r in single]
    assert all(len(r["conversations"]) == 8 for r in four) and all(len(r["conversations"]) == 2 for r in single)
    assert all(s["conversations"] == f["conversations"][:2] for s, f in zip(single, four))


def test_new_projector_is_a_stage1_file_and_is_trained_not_frozen(tmp_path):
    path = new_projector(str(tmp_path / "p.safetensors"), 8, 12)
    state = read_state_dict(path)
    assert state["model.mm_projector.0.weight"].shape == (12, 8)
    assert state["model.mm_projector.2.weight"].shape == (12, 12)
    assert not torch.equal(state["model.mm_projector.0.weight"], torch.zeros(12, 8))
    args = train_args("d.json", "img", "out", 5, path)
    assert args[args.index("--pretrain_mm_mlp_adapter") + 1] == path and "--freeze_mm_mlp_adapter" not in args
    assert "--freeze_mm_mlp_adapter" in train_args("d.json", "img", "out", 5, None)
