"""How the kit's yes/no questions are drawn from easy-vqa: positive phrasings only, balanced per phrasing so the
question text does not predict the answer, and packed several to an image as LLaVA-1.5 packs its VQA data.
"""

from __future__ import annotations

import random

from llava.constants import SHORT_ANSWER
from llava.kit.easy_vqa_attributes import COLORS, SHAPES, Attributes


def yes_no_conversation(a: Attributes, phrasings: dict[str, list[str]], rng: random.Random,
                         turns: int = 8) -> list[tuple[str, str]]:
    """`turns` yes/no questions about one image, as LLaVA-1.5 packs an image's VQA questions into one conversation:
    per attribute (colour, shape) turns/4 true ones (each in another phrasing, while there are) and turns/4 false ones
    (each false value different), in easy-vqa's own positive phrasings, shuffled. One image then carries several
    answers for the cost of one image, which is what lets a short run learn yes/no at all
    (`python -m llava.kit.yes_no_ablation`, docs/experiment_kit.md)."""
    if turns % 4 or not 0 < turns // 4 < len(SHAPES):
        raise ValueError(f"yes/no conversations hold 4 or 8 questions (one false value per true one), not {turns}")
    exchanges = []
    for kind, values in (("color", tuple(COLORS)), ("shape", SHAPES)):
        truth, used, asked_true = getattr(a, kind), set(), set()
        for _ in range(turns // 4):
            other = rng.choice([v for v in values if v != truth and v not in used])
            used.add(other)
            true_phrasing = rng.choice([p for p in phrasings[kind] if p not in asked_true] or phrasings[kind])
            asked_true.add(true_phrasing)
            exchanges.append((f"{true_phrasing.replace('X', truth)}\n{SHORT_ANSWER}", "yes"))
            exchanges.append((f"{rng.choice(phrasings[kind]).replace('X', other)}\n{SHORT_ANSWER}", "no"))
    rng.shuffle(exchanges)
    return exchanges


def positive_phrasings(rows) -> dict[str, list[str]]:
    """easy-vqa's positive yes/no templates, the attribute word replaced by X: {"color": [...], "shape": [...]}."""
    out: dict[str, set] = {"color": set(), "shape": set()}
    for _, question, _ in rows:
        words = {w.strip("?") for w in question.split()}
        out["color" if words & set(COLORS) else "shape"].add(_phrasing(question))
    return {kind: sorted(v) for kind, v in out.items()}


def balanced_yes_no(rows: list, rng: random.Random) -> list:
    """easy-vqa's yes/no answers are skewed per phrasing ("is there a red shape?" is "no" 88% of the time), so the
    question text alone predicts them; taking the phrasings x {yes, no} groups in turn removes that prior, and the
    answer has to come from the image."""
    groups: dict[tuple, list] = {}
    for row in rows:
        groups.setdefault((_phrasing(row[1]), row[2]), []).append(row)
    keys = sorted(groups)
    rng.shuffle(keys)
    out = []
    while any(groups.values()):
        for key in keys:
            if groups[key]:
                out.append(groups[key].pop())
    return out


def negated(question: str) -> bool:
    words = question.lower().strip("?").split()
    return "not" in words or "no" in words


def _phrasing(question: str) -> str:
    """The question with its shape or colour word replaced by X, punctuation kept ("is there a X?")."""
    return " ".join(w.replace(w.strip("?"), "X") if w.strip("?") in SHAPES or w.strip("?") in COLORS else w
                    for w in question.split())
