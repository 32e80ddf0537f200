"""Task Interference Score on a checkpoint trained on a deliberately conflicting mixture (tiny preset): the same
question answered "red" by task `word` and "blue" by task `other`, and an unrelated `shape` task. A step on one of the
conflicting pair must raise the other's loss (negative score), a step on a task must lower its own held-out loss
(positive diagonal); one cell is recomputed independently with torch.func.functional_call."""

import json

import pytest
import torch
from torch.func import functional_call

from llava.analysis.interference import adapter_params, analyse, batch_loss, task_batches
from llava.checkpoint import load_checkpoint_model
from llava.data.dataset import SupervisedDataset
from llava.model.image import ImageTransform
from llava.train.train import train
from tests.helpers.data import conversation, write_images

pytestmark = pytest.mark.slow


def write_conflict(root):
    names = write_images(root, n=6)
    tasks = {"word": ("what color is it?", "red"), "other": ("what color is it?", "blue"),
             "shape": ("what shape is it?", "circle")}
    paths = []
    for task, (question, answer) in tasks.items():
        rows = [conversation(f"{task}{i}", image=names[i % 6], question=question, answer=answer) for i in range(40)]
        path = root / f"{task}.json"
        path.write_text(json.dumps(rows))
        paths.append(f"{task}={path}")
    return ",".join(paths)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("conflict")
    spec = write_conflict(root)
    runs = {}
    for scheme, extra in (("lora", []), ("asymlora", ["--num_experts", "3", "--router_scope", "mlp_block",
                                                      "--mixture_targets", "gate_proj,up_proj,down_proj"])):
        out = root / scheme
        train(["--model_name_or_path", "tiny", "--data_path", spec, "--image_folder", str(root), "--lora_enable",
               "True", "--adapter_scheme", scheme, "--lora_r", "8", "--lora_alpha", "16", "--lora_dropout", "0",
               *extra, "--learning_rate", "3e-3", "--max_steps", "60", "--per_device_train_batch_size", "12",
               "--report_to", "none", "--output_dir", str(out), "--save_steps", "60", "--logging_steps", "10"])
        runs[scheme] = out
    return spec, root, runs


def test_conflicting_pair_interferes_and_each_task_helps_itself(trained):
    spec, root, runs = trained
    result = analyse(str(runs["lora"]), spec, str(root), str(root / "analysis"), batch_size=6, draws=2,
                     step_size=0.002)
    assert result["tasks"] == ["word", "other", "shape"]
    for matrix in ("A", "B"):
        scores = torch.tensor(result[f"interference_{matrix}"])
        assert (scores.diagonal()[:2] > 0).all(), (matrix, scores)  # a step on a task lowers its own held-out loss
        assert scores[0, 1] < 0 and scores[1, 0] < 0, (matrix, scores)  # "blue" steps hurt "red" and back
    assert (root / "analysis" / "interference.png").stat().st_size > 10_000
    assert json.loads((root / "analysis" / "interference.json").read_text())["step_size"] == 0.002


def test_one_cell_matches_an_independent_computation(trained):
    spec, root, runs = trained
    result = analyse(str(runs["lora"]), spec, str(root), str(root / "cell"), batch_size=6, draws=1, step_size=0.002,
                     seed=4)
    model, tokenizer, processor = load_checkpoint_model(str(runs["lora"]))
    model.eval()
    dataset = SupervisedDataset(spec, tokenizer, ImageTransform(processor, "pad"), image_folder=str(root),
                                image_seq_length=model.config.image_seq_length)
    batches = task_batches(dataset, 6, 1, seed=4)
    names = [n for n, p in model.named_parameters() if n.endswith("lora_B")]
    grads = torch.autograd.grad(batch_loss(model, batches[1][1], 1), adapter_params(model, "B"))
    stepped = {n: p.detach() - 0.002 * g for n, p, g in zip(names, adapter_params(model, "B"), grads)}
    inputs = {k: v for k, v in batches[0][0].items() if k not in ("task_ids", "sample_index")}
    with torch.no_grad():
        before = model(**inputs).loss
        after = functional_call(model, stepped, args=(), kwargs=inputs, strict=False).loss
    assert result["interference_B"][0][1] == pytest.approx(((before - after) / before).item(), rel=1e-4)


def test_router_load_heatmap_from_a_routed_checkpoint(trained):
    spec, root, runs = trained
    result = analyse(str(runs["asymlora"]), spec, str(root), str(root / "routed"), batch_size=6, draws=1,
                     step_size=0.002)
    load = torch.tensor(result["router_load"])
    assert load.shape == (3, 3) and torch.allclose(load.sum(1), torch.ones(3))
    assert (root / "routed" / "router_load.png").stat().st_size > 10_000
