"""lmms-eval evaluates our checkpoints through the plugin (registered by entry point), offline on a local fixture
task, and answers exactly as `python -m llava.eval.generate`; its MME scoring and ours agree on the same replies."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from PIL import Image

from llava.constants import SHORT_ANSWER
from llava.eval.benchmarks import mme
from llava.eval.generate import main as generate_cli
from tests.helpers.eval_fixtures import make_mme

lmms_eval = pytest.importorskip("lmms_eval", reason="the lmms-eval extra is part of `make install` (dev)")
pytestmark = pytest.mark.slow

TASK = "llava_fixture_color"
QUESTIONS = ["what color is the shape?", "what shape is in the image?", "is there a red shape?"]


def write_task(root):
    """A YAML task in lmms-eval's format over local files: no hub access."""
    rows = []
    for i, colour in enumerate([(200, 30, 40), (30, 200, 40), (30, 40, 200)]):
        Image.new("RGB", (32 + 8 * i, 32), colour).save(root / f"img{i}.png")
        rows.append({"id": i, "image": str(root / f"img{i}.png"), "question": QUESTIONS[i], "answer": "red"})
    (root / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (root / "utils.py").write_text(textwrap.dedent('''
        from PIL import Image

        def doc_to_visual(doc):
            return [Image.open(doc["image"]).convert("RGB")]

        def doc_to_text(doc, lmms_eval_specific_kwargs=None):
            return doc["question"]

        def process_results(doc, results):
            return {"acc": float(results[0].strip().lower() == doc["answer"])}
        '''))
    (root / f"{TASK}.yaml").write_text(textwrap.dedent(f'''
        task: {TASK}
        dataset_path: json
        dataset_kwargs:
          data_files:
            test: {root / "data.jsonl"}
        test_split: test
        output_type: generate_until
        doc_to_visual: !function utils.doc_to_visual
        doc_to_text: !function utils.doc_to_text
        doc_to_target: answer
        process_results: !function utils.process_results
        generation_kwargs:
          max_new_tokens: 8
          temperature: 0
          do_sample: false
        metric_list:
          - metric: acc
            aggregation: mean
            higher_is_better: true
        '''))
    return rows


def generate_answers(ckpt, rows, tmp_path, task=None):
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"question_id": r["id"], "image": r["image"], "text": r["question"]}) + "\n"
                                 for r in rows))
    answers = tmp_path / f"a-{task}.jsonl"
    generate_cli(["--model-path", str(ckpt), "--question-file", str(questions), "--answers-file", str(answers),
                  "--max_new_tokens", "8"] + (["--task", task] if task else []))
    return {json.loads(line)["question_id"]: json.loads(line)["text"] for line in answers.read_text().splitlines()}


def responses(samples):
    """{doc_id: the filtered response} from lmms-eval's logged samples (doc ids = our question ids here)."""
    out = {}
    for s in samples:
        resp = s["filtered_resps"]
        out[s["doc_id"]] = resp if isinstance(resp, str) else resp[0]
    return out


def test_lmms_eval_cli_runs_a_task_head_checkpoint_through_the_plugin(trained_tiny, tmp_path):
    task_dir = tmp_path / "task"
    task_dir.mkdir()
    rows = write_task(task_dir)
    ckpt = trained_tiny("asymlora_tasks") / "checkpoint-2"
    proc = subprocess.run([sys.executable, "-m", "lmms_eval", "--model", "llava_asymlora", "--model_args",
                           f"pretrained={ckpt},task=color,conv_template=vicuna_v1", "--tasks", TASK,
                           "--include_path", str(task_dir), "--batch_size", "2", "--log_samples",
                           "--output_path", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    samples = [json.loads(line) for p in (tmp_path / "out").rglob(f"*samples_{TASK}.jsonl")
               for line in p.read_text().splitlines()]
    assert len(samples) == 3
    ours = generate_answers(ckpt, rows, tmp_path, task="color")
    assert responses(samples) == ours and any(ours.values())


def test_simple_evaluate_on_a_routed_checkpoint_matches_generate(trained_tiny, tmp_path):
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager

    rows = write_task(tmp_path)
    ckpt = trained_tiny("asymlora") / "checkpoint-2"
    results = simple_evaluate(model="llava_asymlora", model_args=f"pretrained={ckpt}", tasks=[TASK], batch_size=3,
                              task_manager=TaskManager(include_path=str(tmp_path)), log_samples=True)
    assert responses(results["samples"][TASK]) == generate_answers(ckpt, rows, tmp_path)
    assert 0.0 <= results["results"][TASK]["acc,none"] <= 1.0


def test_lmms_eval_mme_scoring_agrees_with_ours(tmp_path):
    from lmms_eval.tasks.mme import utils as theirs

    make_mme(str(tmp_path))
    items = mme.load(str(tmp_path))
    replies = ["Yes", "no.", "No, it is not", "The answer is yes", "yes", "nope", "No", "Yes, it is",
               "no", "yes", "YES", "n/a"]
    assert len(replies) == len(items) == 12
    (tmp_path / "answers.jsonl").write_text("".join(
        json.dumps({"question_id": it["question_id"], "prompt": f"{it['question']}\n{SHORT_ANSWER}", "text": r}) + "\n"
        for it, r in zip(items, replies)))
    ours = mme.score(str(tmp_path), str(tmp_path / "answers.jsonl"))
    per_key: dict[str, list] = {}
    for it, reply in zip(items, replies):
        doc = {"question_id": it["image"], "category": it["subtask"], "answer": it["answer"].capitalize()}
        for key, value in theirs.mme_process_results(doc, [reply]).items():
            per_key.setdefault(key, []).append(value)
    assert theirs.mme_aggregate_results(per_key["mme_perception_score"]) == pytest.approx(ours["perception"])
    assert theirs.mme_aggregate_results(per_key["mme_cognition_score"]) == pytest.approx(ours["cognition"])
    # One documented difference: lmms-eval (after Otter) reads a bare "y"/"n" as yes/no; MME's own calculation.py,
    # which we follow, counts it as neither.
    assert theirs.parse_pred_ans("y") == "yes" and mme.parse_yes_no("y") == "other"
