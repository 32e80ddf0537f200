"""A multi-domain instruction mixture from easy-vqa's real images and questions, mirroring the paper's VQA + Gen +
VQG mix at laptop scale, with one deliberately conflicting pair of tasks.

Tasks (each a task name in the mixture; train from easy-vqa's train split, evaluation from its test split):
  vqa      easy-vqa's questions (shape, colour, yes/no) + LLaVA's short-answer instruction; answers are words. Yes/no
           questions keep easy-vqa's positive phrasings only: balanced against the negated ones ("is there not a red
           shape?") the match -> yes signal cancels, so a model would have to learn negation and matching at once
           (MME asks positively, as the paired benchmark does). In training they come eight to an image, as one
           multi-turn conversation (LLaVA-1.5's VQA data is packed the same way); evaluation asks one at a time.
  vqa_hex  the same colour questions, word for word, answered as a colour code ("#ff0000"): the conflict. A model that
           is not told the task cannot satisfy both; a task-aware adapter can.
  caption  "Describe the image briefly." -> "The image shows a red circle."
  vqg      question generation: given an answer, ask a question about the image that has it. Targets name the other
           attribute ("what color is the circle?" for "red"), so a question is only right if the image was seen.
Plus `pairs`: an MME-style paired yes/no benchmark (for every test image one question whose answer is yes and one
whose answer is no, in MME's folder layout, subtasks `color` and `existence`) scored by the project's MME scorer.

python -m llava.kit.easy_vqa_mixture --out playground/data/mixture --train 1200 --test 40
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil

from llava.constants import SHORT_ANSWER
from llava.kit.easy_vqa_attributes import COLORS, HEX, SHAPES, Attributes, image_attributes, load_easy_vqa
from llava.kit.easy_vqa_yes_no import balanced_yes_no, negated, positive_phrasings, yes_no_conversation

TASKS = ("vqa", "vqa_hex", "caption", "vqg")
CAPTION_PROMPT = "Describe the image briefly."
VQG_PROMPT = 'Ask a question about the image whose answer is "{answer}".'
# vqg targets: easy-vqa's own wh-question templates that name the attribute not asked about.
VQG_TEMPLATES = {"color": ("what color is the {shape}?", "what is the color of the {shape}?"),
                 "shape": ("what is the {color} shape?",)}
MME_SUBDIR = os.path.join("MME", "MME_Benchmark_release_version")
# --model_max_length for the small preset on this data: an eight-question yes/no conversation is 263-285 tokens with
# its 16 image tokens (SmolLM2's chat template; measured on the default mixture), so none is cut
KIT_MAX_TOKENS = 320


def caption_of(a: Attributes) -> str:
    return f"The image shows a {a.color} {a.shape}."


def question_kind(question: str, answer: str) -> str:
    if answer in ("yes", "no"):
        return "yesno"
    return "color" if answer in COLORS or answer.startswith("#") else "shape"


def vqg_answers(question: str, a: Attributes) -> str | None:
    """The answer a generated question has for an image with attributes `a`, if it is one of the vqg templates whose
    named attribute is true of the image; else None (scored wrong)."""
    text = " ".join(question.strip().lower().split())
    for kind, templates in VQG_TEMPLATES.items():
        for template in templates:
            if text == template.format(shape=a.shape, color=a.color):
                return getattr(a, kind)
    return None


def _turns(prompt: str | list[tuple[str, str]], reply: str | None) -> list[dict]:
    """One exchange, or (prompt given as [(question, answer), ...]) a multi-turn conversation about one image."""
    exchanges = prompt if isinstance(prompt, list) else [(prompt, reply)]
    turns = []
    for k, (question, answer) in enumerate(exchanges):
        turns += [{"from": "human", "value": f"<image>\n{question}" if k == 0 else question},
                  {"from": "gpt", "value": answer}]
    return turns


def _copy(image_id: int, split: str, paths: dict, out: str) -> str:
    rel = f"images/{split}_{image_id}.png"
    dst = os.path.join(out, rel)
    if not os.path.exists(dst):
        shutil.copyfile(paths[image_id], dst)
    return rel


def vqa_kinds(n_vqa: int) -> dict[str, int]:
    """vqa's default split of n items: a quarter shape, a quarter colour, half yes/no."""
    return {"shape": n_vqa // 4, "color": n_vqa // 4, "yesno": n_vqa - 2 * (n_vqa // 4)}


def _task_items(split, sizes, rng, attrs, qas, yes_no_turns=8, kinds=None, singles=0.0):
    """{task: [(image_id, prompt, reply, kind)]}: sizes[task] items per task; vqa: `kinds` items per question kind
    (default vqa_kinds) (yes/no: positive phrasings, balanced; in training a conversation of yes_no_turns questions
    per image, whose prompt is [(question, answer), ...], except a `singles` share asked as one question)."""
    by_kind: dict[str, list] = {}
    for text, answer, image_id in qas:
        by_kind.setdefault(question_kind(text, answer), []).append((image_id, text, answer))
    for rows in by_kind.values():
        rng.shuffle(rows)
    by_kind["yesno"] = balanced_yes_no([row for row in by_kind["yesno"] if not negated(row[1])], rng)
    counts = kinds or vqa_kinds(sizes["vqa"])
    vqa = [(i, f"{q}\n{SHORT_ANSWER}", a, k) for k in ("shape", "color") for i, q, a in by_kind[k][:counts[k]]]
    yes_no = by_kind["yesno"][:counts["yesno"]]
    n_single = round(singles * len(yes_no)) if split == "train" else len(yes_no)  # the benchmark asks one at a time
    vqa += [(i, f"{q}\n{SHORT_ANSWER}", a, "yesno") for i, q, a in yes_no[:n_single]]
    if split == "train":  # the others: a conversation of yes/no questions per image
        phrasings = positive_phrasings(by_kind["yesno"])
        vqa += [(i, yes_no_conversation(attrs[i], phrasings, rng, yes_no_turns), None, "yesno")
                for i, _, _ in yes_no[n_single:]]
    colour = by_kind["color"][counts["color"]:] if split == "train" else by_kind["color"]  # other questions than vqa's
    hexes = [(i, f"{q}\n{SHORT_ANSWER}", HEX[a], "color") for i, q, a in colour[:sizes["vqa_hex"]]]
    images = sorted(attrs)
    rng.shuffle(images)
    n_caption = sizes["caption"]
    captions = [(i, CAPTION_PROMPT, caption_of(attrs[i]), "caption") for i in images[:n_caption]]
    vqg = []
    for i in images[n_caption:n_caption + sizes["vqg"]]:
        kind = rng.choice(("color", "shape"))
        answer = getattr(attrs[i], kind)
        target = rng.choice(VQG_TEMPLATES[kind]).format(shape=attrs[i].shape, color=attrs[i].color)
        vqg.append((i, VQG_PROMPT.format(answer=answer), target, kind))
    return {"vqa": vqa, "vqa_hex": hexes, "caption": captions, "vqg": vqg}


def _write_pairs(out, rng, attrs, paths, n_images) -> int:
    """MME layout: <out>/MME/MME_Benchmark_release_version/{color,existence}/images/*.png + questions_answers_YN/."""
    base = os.path.join(out, MME_SUBDIR)
    shutil.rmtree(base, ignore_errors=True)
    images = sorted(attrs)
    rng.shuffle(images)
    for subtask, kind, template, values in (("color", "color", "is there a {} shape?", tuple(COLORS)),
                                            ("existence", "shape", "is there a {} in the image?", SHAPES)):
        os.makedirs(os.path.join(base, subtask, "images"))
        os.makedirs(os.path.join(base, subtask, "questions_answers_YN"))
        for image_id in images[:n_images]:
            truth = getattr(attrs[image_id], kind)
            other = rng.choice([v for v in values if v != truth])
            shutil.copyfile(paths[image_id], os.path.join(base, subtask, "images", f"{image_id}.png"))
            lines = [f"{template.format(truth)}\tYes", f"{template.format(other)}\tNo"]  # easy-vqa's own wording
            rng.shuffle(lines)
            with open(os.path.join(base, subtask, "questions_answers_YN", f"{image_id}.txt"), "w") as f:
                f.write("\n".join(lines) + "\n")
    return 2 * 2 * n_images


def build(out: str, n_train: int = 1200, n_test: int = 40, seed: int = 0,
          train_sizes: dict[str, int] | None = None, yes_no_turns: int = 8, test_sizes: dict[str, int] | None = None,
          yes_no_singles: float = 0.0) -> dict:
    """Write the mixture under `out` and return its manifest (paths and counts; also saved as manifest.json).

    n_train / n_test are per task (train_sizes: {task: n} overrides n_train); the paired benchmark has n_test images per
    subtask (2 questions each). test_sizes overrides the held-out set per reported cell: {"shape", "color", "yesno"
    (vqa's kinds), "vqa_hex", "caption", "vqg": questions, "pairs": images per subtask}. yes_no_turns: questions per
    training yes/no conversation (4 or 8); yes_no_singles: the share of training yes/no images asked one question.
    """
    cells = {**vqa_kinds(n_test), **{t: n_test for t in TASKS[1:]}, "pairs": n_test, **(test_sizes or {})}
    ev = load_easy_vqa()
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    os.makedirs(os.path.join(out, "eval"), exist_ok=True)
    manifest = {"seed": seed, "tasks": list(TASKS), "train": {}, "eval": {}, "counts": {}}
    for split, n in (("train", n_train), ("test", n_test)):
        rng = random.Random(f"{seed}/{split}")  # one stream per split: training options never redraw the test set
        attrs, paths = image_attributes(split)
        qas = list(zip(*getattr(ev, f"get_{split}_questions")()))
        if split == "train":
            sizes = {t: (train_sizes or {}).get(t, n) for t in TASKS}
            kinds = vqa_kinds(sizes["vqa"])
        else:
            kinds = {k: cells[k] for k in ("shape", "color", "yesno")}
            sizes = {"vqa": sum(kinds.values()), **{t: cells[t] for t in TASKS[1:]}}
        for task, items in _task_items(split, sizes, rng, attrs, qas, yes_no_turns, kinds, yes_no_singles).items():
            if len(items) != sizes[task]:
                raise ValueError(f"easy-vqa's {split} split holds {len(items)} {task} samples for this mixture, "
                                 f"{sizes[task]} were asked for: lower the per-task count")
            if split == "train":
                rows = [{"id": f"{task}-{k}", "image": _copy(i, split, paths, out), "task": task,
                         "conversations": _turns(prompt, reply)} for k, (i, prompt, reply, _) in enumerate(items)]
                path = os.path.join(out, f"train_{task}.json")
                with open(path, "w") as f:
                    json.dump(rows, f)
                manifest["train"][task] = path
            else:
                path = os.path.join(out, "eval", f"{task}.jsonl")
                with open(path, "w") as f:
                    for k, (i, prompt, reply, kind) in enumerate(items):
                        a = attrs[i]
                        f.write(json.dumps({"question_id": f"{task}-{k}", "image": _copy(i, split, paths, out),
                                            "text": prompt, "answer": reply, "category": kind, "task": task,
                                            "shape": a.shape, "color": a.color}) + "\n")
                manifest["eval"][task] = path
            manifest["counts"][f"{split}/{task}"] = len(items)
        if split == "test":
            manifest["counts"]["pairs"] = _write_pairs(out, rng, attrs, paths, cells["pairs"])
            manifest["pairs_root"] = out
    manifest["mixture"] = ",".join(f"{t}={manifest['train'][t]}" for t in TASKS)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="playground/data/mixture")
    ap.add_argument("--train", type=int, default=1200, help="training samples per task")
    ap.add_argument("--test", type=int, default=40, help="evaluation questions per task (and paired images)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(json.dumps(build(args.out, args.train, args.test, args.seed)["counts"], indent=1))


if __name__ == "__main__":
    main()
