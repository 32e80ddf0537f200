"""Generation writes one answer per question, and a stopped or killed run resumes without duplicates."""

import json
import os

import pytest

from llava.eval.benchmarks import gqa
from llava.eval.generate import answered_ids, chunk, read_questions, run
from llava.model.builder import load_model
from tests.helpers.eval_fixtures import make_gqa


@pytest.fixture(scope="module")
def model():
    return load_model("tiny")


def lines(path):
    return [json.loads(line) for line in open(path)]


def gqa_run(tmp_path):
    """The GQA fixture's questions, an answers path and the run settings the resume tests share."""
    make_gqa(str(tmp_path))
    qfile = tmp_path / "questions.jsonl"
    gqa.convert(str(tmp_path), str(qfile))
    kw = dict(image_folder=str(tmp_path / "gqa" / "data" / "images"), batch_size=3, max_new_tokens=4, progress=False)
    return read_questions(str(qfile)), tmp_path / "answers.jsonl", kw


def test_stop_and_resume_answers_each_question_once(tmp_path, model):
    questions, out, kw = gqa_run(tmp_path)
    m, tok, ip = model
    assert run(m, tok, ip, questions, str(out), limit=2, **kw) == 2  # stopped after 2 items
    with open(out, "a") as f:
        f.write('{"question_id": "203", "text": "half a li')  # killed mid-write
    assert answered_ids(str(out)) == {"201", "202"}
    assert run(m, tok, ip, questions, str(out), **kw) == len(questions) - 2
    rows = lines(out)
    assert sorted(r["question_id"] for r in rows) == sorted(q["question_id"] for q in questions)
    assert run(m, tok, ip, questions, str(out), **kw) == 0  # nothing left to do
    assert list(rows[0]) == ["question_id", "prompt", "text", "answer_id", "model_id", "metadata"]  # LLaVA's


def test_a_changed_prompt_is_answered_anew_and_only_it(tmp_path, model, capsys):
    """Resuming reuses an answer only for the same id, prompt and image: edit one question of the file after
    answering, and only that one is generated again (and said)."""
    questions, out, kw = gqa_run(tmp_path)
    m, tok, ip = model
    assert run(m, tok, ip, questions, str(out), **kw) == len(questions)
    before = {r["answer_id"]: r for r in lines(out)}
    questions[2] = {**questions[2], "text": questions[2]["text"].replace("shape", "form")}
    capsys.readouterr()
    assert run(m, tok, ip, questions, str(out), **kw) == 1
    assert "discarded 1 answers" in capsys.readouterr().out
    rows = lines(out)
    assert [r["prompt"] for r in rows].count(questions[2]["text"]) == 1 and len(rows) == len(questions)
    assert sum(r["answer_id"] in before for r in rows) == len(questions) - 1  # the others kept as they were
    questions[3] = {**questions[3], "image": "img1.jpg" if questions[3]["image"] != "img1.jpg" else "img2.jpg"}
    assert run(m, tok, ip, questions, str(out), **kw) == 1  # same id and prompt, another image: answered anew
    assert run(m, tok, ip, questions, str(out), **kw) == 0


def test_batched_equals_one_by_one(tmp_path, model):
    """Left padding must not change greedy answers."""
    make_gqa(str(tmp_path))
    qfile = tmp_path / "q.jsonl"
    gqa.convert(str(tmp_path), str(qfile))
    questions = read_questions(str(qfile))
    m, tok, ip = model
    kw = dict(image_folder=str(tmp_path / "gqa" / "data" / "images"), max_new_tokens=6, progress=False)
    run(m, tok, ip, questions, str(tmp_path / "batched.jsonl"), batch_size=4, **kw)
    run(m, tok, ip, questions, str(tmp_path / "single.jsonl"), batch_size=1, **kw)
    assert [r["text"] for r in lines(tmp_path / "batched.jsonl")] == [r["text"] for r in lines(tmp_path / "single.jsonl")]


ADAPTERS = {
    "lora": dict(scheme="lora", r=4, alpha=8),
    "asymlora_paper": dict(r=4, alpha=8),  # AdapterConfig.preset("asymlora"): routed B heads per MLP block
    "moe_lora": dict(scheme="moe_lora", r=4, alpha=8, num_experts=3, router="topk", top_k=2),
    "mixlora": dict(scheme="mixlora", r=2, alpha=4, num_experts=8),
    "asymlora_prompt": dict(r=4, alpha=8, router_input="prompt"),  # one gate per sample from its prompt, kept
}


@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
@pytest.mark.parametrize("name", list(ADAPTERS))
def test_batched_equals_one_by_one_with_every_adapter(tmp_path, name, dtype):
    """Routers see padded positions in a left-padded batch (token routers) or pool over the prompt (MixLoRA, prompt
    routers, whose gates are then kept through decoding): the
    greedy answers must still be those of one question at a time, also in fp16, LLaVA's evaluation dtype (adapters
    cast to it once, as a checkpoint loads for inference)."""
    import torch

    from llava.adapters import AdapterConfig, inject_adapters
    from llava.adapters.inject import cast_adapters
    from llava.eval.generate import compute_dtype

    m, tok, ip = load_model("tiny", dtype=dtype)
    kw = ADAPTERS[name]
    config = AdapterConfig.preset("asymlora", **kw) if name.startswith("asymlora") else AdapterConfig(**kw)
    inject_adapters(m, config)
    torch.manual_seed(0)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n.endswith("lora_B"):
                p.normal_(0, 0.5)  # adapters that move the answers (B starts at zero)
    if dtype == "fp16":
        cast_adapters(m, torch.float16)
        assert compute_dtype(m) == "fp16"
    m.eval()
    make_gqa(str(tmp_path))
    qfile = tmp_path / "q.jsonl"
    gqa.convert(str(tmp_path), str(qfile))
    questions = read_questions(str(qfile))
    opts = dict(image_folder=str(tmp_path / "gqa" / "data" / "images"), max_new_tokens=6, progress=False)
    run(m, tok, ip, questions, str(tmp_path / "batched.jsonl"), batch_size=4, **opts)
    run(m, tok, ip, questions, str(tmp_path / "single.jsonl"), batch_size=1, **opts)
    batched = [r["text"] for r in lines(tmp_path / "batched.jsonl")]
    assert batched == [r["text"] for r in lines(tmp_path / "single.jsonl")]
    base = tmp_path / "base.jsonl"
    run(*load_model("tiny", dtype=dtype), questions, str(base), batch_size=4, **opts)
    assert batched != [r["text"] for r in lines(base)]  # the adapters changed the answers
    assert {r["metadata"]["dtype"] for r in lines(tmp_path / "batched.jsonl")} == {dtype}


def test_chunks_cover_everything_once():
    rows = list(range(10))
    parts = [chunk(rows, 3, i) for i in range(3)]
    assert sum(parts, []) == rows


def test_resume_never_rewrites_the_answers_file(tmp_path, monkeypatch):
    out = tmp_path / "answers.jsonl"
    good = "".join(json.dumps({"question_id": str(i), "text": "x"}) + "\n" for i in range(1000))
    out.write_text(good + '{"question_id": "1000", "te')
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda f, mode="r", *a, **k: opened.append(mode) or real_open(f, mode, *a, **k))
    assert len(answered_ids(str(out))) == 1000
    monkeypatch.undo()
    assert out.read_text() == good  # only the unfinished tail is cut (os.truncate): a kill cannot lose a line
    assert all("w" not in mode and "a" not in mode for mode in opened)


def test_missing_images_are_listed_before_loading_and_scored_as_unanswered(tmp_path, model, capsys):
    from llava.eval.benchmark import main as benchmark_cli
    from llava.eval.generate import main as generate_cli
    from tests.helpers.eval_fixtures import make_mme

    make_mme(str(tmp_path))
    qfile = tmp_path / "mme.jsonl"
    benchmark_cli(["convert", "mme", "--root", str(tmp_path), "--out", str(qfile)])
    questions = read_questions(str(qfile))
    folder = tmp_path / "MME" / "MME_Benchmark_release_version"
    victim = next(q for q in questions if q.get("image"))
    os.remove(folder / victim["image"])
    lost = [q["question_id"] for q in questions if q.get("image") == victim["image"]]
    args = ["--model-path", "tiny", "--question-file", str(qfile), "--answers-file", str(tmp_path / "a.jsonl"),
            "--image-folder", str(folder), "--max-new-tokens", "2"]
    with pytest.raises(SystemExit, match=f"{len(lost)} of {len(questions)} questions have no image file"):
        generate_cli(args)
    assert not (tmp_path / "a.jsonl").exists()  # refused before the model loaded or anything was written
    generate_cli(args + ["--skip-missing-images"])
    rows = lines(tmp_path / "a.jsonl")
    assert sorted(r["question_id"] for r in rows) == sorted(q["question_id"] for q in questions)
    assert sorted(r["question_id"] for r in rows if r.get("unanswered")) == sorted(lost)
    benchmark_cli(["score", "mme", "--root", str(tmp_path), "--answers", str(tmp_path / "a.jsonl"),
                   "--out-dir", str(tmp_path / "scores")])
    scored = json.loads((tmp_path / "scores" / "mme.json").read_text())
    assert sorted(scored["unanswered"]) == sorted(lost)
    assert f"{len(lost)} questions unanswered (image missing), scored as wrong" in capsys.readouterr().out


def test_the_lm_head_sees_a_contiguous_input_and_computes_the_same_logits():
    import torch

    from llava.inference import contiguous_head_input

    m, _, _ = load_model("tiny")
    head = m.get_output_embeddings()
    hidden = torch.randn(4, 7, head.in_features)
    strided = hidden[:, -1:]  # what generate's prefill hands the head
    assert not strided.is_contiguous()
    before = head(strided)
    seen = []
    head.register_forward_hook(lambda module, args, out: seen.append(args[0].is_contiguous()))
    contiguous_head_input(m)
    contiguous_head_input(m)  # once per model
    assert torch.equal(head(strided), before) and seen == [True]
    assert len(head._forward_pre_hooks) == 1


def test_the_model_is_sent_the_question_files_text_as_llava_sends_it(tmp_path, model):
    """LLaVA's model_vqa_loader sends "<image>\\n" + the file's text inside the vicuna_v1 conversation, the text
    untouched (no strip): the full prompt recorded with each answer is that string, byte for byte."""
    make_gqa(str(tmp_path))
    text = "  Is the box red? \nAnswer the question using a single word or phrase. "
    questions = [{"question_id": "q1", "image": "img1.jpg", "text": text, "category": "default"}]
    m, tok, ip = model
    run(m, tok, ip, questions, str(tmp_path / "a.jsonl"), image_folder=str(tmp_path / "gqa" / "data" / "images"),
        conv_mode="vicuna_v1", max_new_tokens=2, progress=False)
    row = lines(tmp_path / "a.jsonl")[0]
    # LLaVA's conv_vicuna_v1 (SeparatorStyle.TWO: system, sep " ", "USER: " message sep, "ASSISTANT:")
    llava_v1 = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
                "detailed, and polite answers to the user's questions. USER: <image>\n" + text + " ASSISTANT:")
    assert row["metadata"]["full_prompt"] == llava_v1 and row["prompt"] == text
