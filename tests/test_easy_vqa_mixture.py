"""The experiment kit's data: every easy-vqa image's attributes, the four-task mixture with its conflicting pair, the
paired yes/no benchmark in MME's layout, and the scores and blind baselines computed on them."""

import json
import os

import pytest

from llava.eval.benchmarks import mme
from llava.kit.easy_vqa_attributes import COLORS, HEX, SHAPES, Attributes, from_pixels, image_attributes, implied
from llava.kit.easy_vqa_mixture import MME_SUBDIR, SHORT_ANSWER, build, caption_of, vqg_answers
from llava.kit.easy_vqa_yes_no import negated
from llava.kit.scores import BlindBaseline, pair_questions, score_pairs, score_task

easy_vqa = pytest.importorskip("easy_vqa", reason="the easy-vqa package is in the dev extra (make install)")


@pytest.mark.parametrize("split", ["train", "test"])
def test_attributes_agree_with_every_question_and_pixels_alone_agree_where_questions_settle_shape(split):
    attrs, paths = image_attributes(split)  # raises on any question that contradicts an image's attributes
    assert len(attrs) == {"train": 4000, "test": 1000}[split]
    assert {a.shape for a in attrs.values()} == set(SHAPES) and {a.color for a in attrs.values()} == set(COLORS)
    texts, answers, image_ids = getattr(easy_vqa, f"get_{split}_questions")()
    settled = {}
    for text, answer, image_id in zip(texts, answers, image_ids):
        for kind, value, holds in implied(text, answer):
            if kind == "shape" and holds:
                settled[image_id] = value
    assert len(settled) > 0.8 * len(attrs)
    disagree = [i for i, shape in settled.items() if from_pixels(paths[i]).shape != shape]
    assert disagree == []


def test_negated_phrasings_are_recognised():
    assert negated("is there not a red shape?") and negated("is no circle present?")
    assert negated("does the image not contain a blue shape?")
    assert not negated("is there a red shape in the image?") and not negated("is a circle present?")


def test_implied_reads_negations():
    assert implied("is there not a red shape?", "yes") == [("color", "red", False)]
    assert implied("does the image contain a circle?", "no") == [("shape", "circle", False)]
    assert implied("what color is the triangle?", "blue") == [("color", "blue", True)]


@pytest.fixture(scope="module")
def mixture(tmp_path_factory):
    out = tmp_path_factory.mktemp("mixture")
    return build(str(out), n_train=48, n_test=12, seed=3), out


def test_mixture_tasks_hold_what_they_promise(mixture):
    manifest, out = mixture
    attrs = {**{("train", i): a for i, a in image_attributes("train")[0].items()},
             **{("test", i): a for i, a in image_attributes("test")[0].items()}}

    def attributes_of(image):
        split, image_id = image.removeprefix("images/").removesuffix(".png").split("_")
        return attrs[split, int(image_id)]

    train = {t: json.loads(open(p).read()) for t, p in manifest["train"].items()}
    assert {t: len(v) for t, v in train.items()} == {"vqa": 48, "vqa_hex": 48, "caption": 48, "vqg": 48}
    assert manifest["mixture"].split(",")[0] == f"vqa={manifest['train']['vqa']}"
    for row in train["vqa_hex"]:  # the conflict: colour questions in vqa's own words, answered as a colour code
        question, answer = row["conversations"][0]["value"], row["conversations"][1]["value"]
        assert question.endswith(f"\n{SHORT_ANSWER}") and "color" in question
        assert answer == HEX[attributes_of(row["image"]).color]
    vqa_colour = [r for r in train["vqa"] if r["conversations"][1]["value"] in COLORS]
    assert len(vqa_colour) == 12 and all(r["conversations"][0]["value"].endswith(f"\n{SHORT_ANSWER}")
                                         for r in vqa_colour)
    yes_no = [r for r in train["vqa"] if r["conversations"][1]["value"] in ("yes", "no")]
    assert len(yes_no) == 24  # half of vqa: one eight-question conversation per image
    for row in yes_no:
        a, turns = attributes_of(row["image"]), row["conversations"]
        assert len(turns) == 16 and turns[0]["value"].startswith("<image>\n")
        assert not any("<image>" in t["value"] for t in turns[1:])
        answers = [t["value"] for t in turns[1::2]]
        assert sorted(answers) == ["no"] * 4 + ["yes"] * 4  # balanced: the text alone does not give the answer
        kinds = []
        for human, gpt in zip(turns[0::2], turns[1::2]):
            question = human["value"].removeprefix("<image>\n")
            assert question.endswith(f"?\n{SHORT_ANSWER}") and not negated(question)  # easy-vqa's own "?" kept
            words = set(question.split("\n")[0].strip("?").split())
            named = (words & set(COLORS)) or (words & set(SHAPES))
            assert len(named) == 1  # the answer is what the image says of the one attribute word asked about
            assert ({a.color, a.shape} & named != set()) == (gpt["value"] == "yes")
            kinds.append("color" if named <= set(COLORS) else "shape")
        assert sorted(kinds) == ["color"] * 4 + ["shape"] * 4
    test_yes_no = [json.loads(line) for line in open(manifest["eval"]["vqa"]) if '"yesno"' in line]
    assert test_yes_no and not any(negated(r["text"].split("\n")[0]) for r in test_yes_no)
    for row in train["caption"]:
        assert row["conversations"][1]["value"] == caption_of(attributes_of(row["image"]))
    for row in train["vqg"]:
        a = attributes_of(row["image"])
        target = row["conversations"][0]["value"].split('"')[1]
        assert vqg_answers(row["conversations"][1]["value"], a) == target

    # the paired benchmark: MME's layout, per image one true ("Yes") and one false ("No") question
    items = mme.load(str(out))
    assert len(items) == manifest["counts"]["pairs"] == 2 * 2 * 12
    by_image = {}
    for it in items:
        by_image.setdefault(it["image"], []).append(it["answer"])
    assert all(sorted(v) == ["no", "yes"] for v in by_image.values())


def test_training_options_do_not_change_the_held_out_set(mixture, tmp_path):
    manifest, out = mixture
    other = build(str(tmp_path), n_train=40, n_test=12, seed=3, yes_no_turns=4)
    for task, path in manifest["eval"].items():
        assert open(other["eval"][task]).read() == open(path).read()
    for subtask in ("color", "existence"):
        pairs = os.path.join(MME_SUBDIR, subtask, "questions_answers_YN")
        names = sorted(os.listdir(out / pairs))
        assert len(names) == 12 and names == sorted(os.listdir(tmp_path / pairs))
        assert all(open(out / pairs / n).read() == open(tmp_path / pairs / n).read() for n in names)


def test_scores_and_blind_baseline(mixture, tmp_path):
    manifest, out = mixture
    rows = [json.loads(line) for line in open(manifest["eval"]["vqa"])]
    replies = {r["question_id"]: r["answer"] for r in rows}
    assert set(score_task("vqa", rows, replies).values()) == {100.0}
    wrong = {**replies, rows[0]["question_id"]: "nothing"}
    kind = rows[0]["category"]
    n = sum(r["category"] == kind for r in rows)
    assert n >= 3 and score_task("vqa", rows, wrong)[kind] == pytest.approx(round(100 * (n - 1) / n, 2))
    vqg = [json.loads(line) for line in open(manifest["eval"]["vqg"])]
    a = Attributes(vqg[0]["shape"], vqg[0]["color"])
    good = f"what color is the {a.shape}?" if vqg[0]["category"] == "color" else f"what is the {a.color} shape?"
    other = "circle" if a.shape != "circle" else "triangle"
    scored = score_task("vqg", vqg[:1], {vqg[0]["question_id"]: good.upper()})  # case does not matter
    assert scored == {"vqg": 100.0}
    assert score_task("vqg", vqg[:1], {vqg[0]["question_id"]: f"what color is the {other}?"}) == {"vqg": 0.0}

    questions = pair_questions(str(out))
    truth = {q["question_id"]: it["answer"] for q, it in zip(questions, mme.load(str(out)))}  # units: image#place
    assert len(truth) == len(questions) == 2 * len({it["image"] for it in mme.load(str(out))})
    assert score_pairs(str(out), truth)["acc_plus"] == 100.0
    all_yes = score_pairs(str(out), {q: "Yes" for q in truth})
    assert (all_yes["acc"], all_yes["acc_plus"]) == (50.0, 0.0)  # MME: one of each pair right, no pair right

    train = tmp_path / "t.json"
    samples = [("what color is the shape?", "red")] * 3 + [("what color is the shape?", "blue")] * 2 + [
        ("is there a red shape?", "no")]
    train.write_text(json.dumps([{"conversations": [{"from": "human", "value": f"<image>\n{q}"},
                                                    {"from": "gpt", "value": a}]} for q, a in samples]))
    blind = BlindBaseline({"vqa": str(train)})
    assert blind.answer("vqa", "What color is the shape?", "color") == "red"  # most frequent for that text
    assert blind.answer("vqa", "what is the color of the circle?", "color") == "red"  # new text: same kind
    assert blind.pair_replies(questions[:1]) == {questions[0]["question_id"]: "no"}

    # every exchange of a multi-turn sample counts, not only the first
    conversation = [{"from": "human", "value": "<image>\nis there a red shape?"}, {"from": "gpt", "value": "no"},
                    {"from": "human", "value": "is there a circle?"}, {"from": "gpt", "value": "yes"},
                    {"from": "human", "value": "is there a blue shape?"}, {"from": "gpt", "value": "yes"}]
    train.write_text(json.dumps([{"conversations": conversation}]))
    blind = BlindBaseline({"vqa": str(train)})
    assert blind.answer("vqa", "is there a circle?", "yesno") == "yes"
    assert blind.answer("vqa", "is there a blue shape?", "yesno") == "yes"


def test_yes_no_conversations_of_eight_questions_ask_each_attribute_against_two_false_values():
    import random

    from llava.kit.easy_vqa_yes_no import yes_no_conversation

    a = Attributes(shape="triangle", color="teal")
    phrasings = {"color": ["is there a X shape?", "is a X shape present?"], "shape": ["does the image contain a X?"]}
    exchanges = yes_no_conversation(a, phrasings, random.Random(0), turns=8)
    asked = {(q.split("\n")[0], answer) for q, answer in exchanges}
    assert len(exchanges) == 8 and len(asked) == 7  # the true shape asked twice: it has one phrasing here
    assert sorted(answer for _, answer in exchanges) == ["no"] * 4 + ["yes"] * 4
    false_shapes = {q.split()[-1].strip("?") for q, answer in asked if answer == "no" and "contain" in q}
    assert false_shapes == {"circle", "rectangle"}  # both other shapes, neither the true one
    assert {q for q, answer in asked if answer == "yes" and "teal" in q} == {"is there a teal shape?",
                                                                         "is a teal shape present?"}
    with pytest.raises(ValueError, match="4 or 8"):
        yes_no_conversation(a, phrasings, random.Random(0), turns=12)


def _pixels(path):
    import hashlib

    from PIL import Image

    return hashlib.sha1(Image.open(path).convert("RGB").tobytes()).hexdigest()


def test_held_out_sizes_per_cell_and_no_held_out_image_is_a_training_image(tmp_path):
    cells = {"shape": 30, "color": 20, "yesno": 25, "vqa_hex": 15, "caption": 10, "vqg": 12, "pairs": 9}
    manifest = build(str(tmp_path), n_train=48, n_test=12, seed=1, test_sizes=cells)
    rows = [json.loads(line) for line in open(manifest["eval"]["vqa"])]
    assert {k: sum(r["category"] == k for r in rows) for k in ("shape", "color", "yesno")} == \
        {"shape": 30, "color": 20, "yesno": 25}
    assert [manifest["counts"][f"test/{t}"] for t in ("vqa_hex", "caption", "vqg")] == [15, 10, 12]
    assert manifest["counts"]["pairs"] == 4 * 9
    train_images = {r["image"] for p in manifest["train"].values() for r in json.loads(open(p).read())}
    held_out = {json.loads(line)["image"] for p in manifest["eval"].values() for line in open(p)}
    pair_images = [os.path.join(tmp_path, MME_SUBDIR, sub, "images", n)
                   for sub in ("color", "existence") for n in os.listdir(tmp_path / MME_SUBDIR / sub / "images")]
    folder = os.path.dirname(manifest["train"]["vqa"])
    seen = {_pixels(os.path.join(folder, image)) for image in train_images}
    shown = {_pixels(os.path.join(folder, image)) for image in held_out} | {_pixels(p) for p in pair_images}
    assert len(seen) > 100 and len(shown) > 50 and not seen & shown  # by content, not only by file name


def test_yes_no_singles_ask_a_share_of_training_images_one_question(mixture, tmp_path):
    manifest, _ = mixture
    singles = build(str(tmp_path), n_train=48, n_test=12, seed=3, yes_no_singles=0.25)

    def yes_no(m):
        rows = json.loads(open(m["train"]["vqa"]).read())
        return [r for r in rows if r["conversations"][1]["value"] in ("yes", "no")]

    before, after = yes_no(manifest), yes_no(singles)
    assert len(before) == len(after) == 24 and all(len(r["conversations"]) == 16 for r in before)
    assert sorted(len(r["conversations"]) for r in after) == [2] * 6 + [16] * 18
    assert {r["image"] for r in before} == {r["image"] for r in after}  # the same images, asked differently
    assert open(singles["eval"]["vqa"]).read() == open(manifest["eval"]["vqa"]).read()
