"""The EvalAI / VQA answer normaliser (TextVQA, VizWiz, VQAv2 leaderboards), and VQA soft accuracy.

Steps, in the official order: lower-case; drop ',' and '?'; split off "'s"; punctuation removed (or turned into a
space when it joins two words); a period not followed by a digit removed; number words zero..ten -> digits;
articles dropped; missing-apostrophe contractions restored ("dont" -> "don't").
"""

from __future__ import annotations

import re
from itertools import combinations

_NUMBERS = dict(none="0", zero="0", one="1", two="2", three="3", four="4", five="5", six="6", seven="7", eight="8",
                nine="9", ten="10")
_ARTICLES = frozenset(("a", "an", "the"))
_PUNCTUATION = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?",
                "!"]
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")  # the official pattern: a period not followed by a digit
_DIGIT_COMMA = re.compile(r"(?<=\d)(\,)+(?=\d)")

# Contractions written without apostrophes, as the official table lists them ("key=value" pairs).
_CONTRACTION_TABLE = """
aint=ain't arent=aren't cant=can't couldve=could've couldnt=couldn't couldn'tve=couldn't've couldnt've=couldn't've
didnt=didn't doesnt=doesn't dont=don't hadnt=hadn't hadnt've=hadn't've hadn'tve=hadn't've hasnt=hasn't
havent=haven't hed=he'd hed've=he'd've he'dve=he'd've hes=he's howd=how'd howll=how'll hows=how's Id've=I'd've
I'dve=I'd've Im=I'm Ive=I've isnt=isn't itd=it'd itd've=it'd've it'dve=it'd've itll=it'll let's=let's maam=ma'am
mightnt=mightn't mightnt've=mightn't've mightn'tve=mightn't've mightve=might've mustnt=mustn't mustve=must've
neednt=needn't notve=not've oclock=o'clock oughtnt=oughtn't ow's'at='ow's'at 'ows'at='ow's'at 'ow'sat='ow's'at
shant=shan't shed've=she'd've she'dve=she'd've she's=she's shouldve=should've shouldnt=shouldn't
shouldnt've=shouldn't've shouldn'tve=shouldn't've somebody'd=somebodyd somebodyd've=somebody'd've
somebody'dve=somebody'd've somebodyll=somebody'll somebodys=somebody's someoned=someone'd
someoned've=someone'd've someone'dve=someone'd've someonell=someone'll someones=someone's somethingd=something'd
somethingd've=something'd've something'dve=something'd've somethingll=something'll thats=that's thered=there'd
thered've=there'd've there'dve=there'd've therere=there're theres=there's theyd=they'd theyd've=they'd've
they'dve=they'd've theyll=they'll theyre=they're theyve=they've twas='twas wasnt=wasn't wed've=we'd've
we'dve=we'd've weve=we've werent=weren't whatll=what'll whatre=what're whats=what's whatve=what've whens=when's
whered=where'd wheres=where's whereve=where've whod=who'd whod've=who'd've who'dve=who'd've wholl=who'll
whos=who's whove=who've whyll=why'll whyre=why're whys=why's wont=won't wouldve=would've wouldnt=wouldn't
wouldnt've=wouldn't've wouldn'tve=wouldn't've yall=y'all yall'll=y'all'll y'allll=y'all'll yall'd've=y'all'd've
y'alld've=y'all'd've y'all'dve=y'all'd've youd=you'd youd've=you'd've you'dve=you'd've youll=you'll
youre=you're youve=you've
"""
CONTRACTIONS = dict(pair.split("=", 1) for pair in _CONTRACTION_TABLE.split())


def _punctuation(text: str) -> str:
    out = text
    has_digit_comma = _DIGIT_COMMA.search(text) is not None
    for p in _PUNCTUATION:
        if p + " " in text or " " + p in text or has_digit_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    # The official VQA/EvalAI code calls `periodStrip.sub("", outText, re.UNICODE)`: re.UNICODE (= 32) lands in
    # sub()'s `count`, so at most 32 periods are removed. Scores are only comparable with that quirk kept.
    return _PERIOD.sub("", out, count=int(re.UNICODE))


def normalize_answer(answer: str) -> str:
    text = answer.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    text = _punctuation(text)
    words = [_NUMBERS.get(w, w) for w in text.lower().split()]
    words = [CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES]
    return " ".join(words)


def soft_scores(human_answers: list[str]) -> dict[str, float]:
    """VQA accuracy of every distinct (normalised) human answer: min(1, matches/3) averaged over the
    leave-one-out subsets of the human answers (10 subsets of 9 for the usual 10 answers)."""
    answers = [normalize_answer(a) for a in human_answers]
    if not answers:
        return {}
    scores = {}
    for candidate in set(answers):
        subsets = list(combinations(range(len(answers)), len(answers) - 1)) if len(answers) > 1 else [(0,)]
        accs = [min(1.0, sum(answers[i] == candidate for i in subset) / 3.0) for subset in subsets]
        scores[candidate] = sum(accs) / len(accs)
    return scores


def vqa_accuracy(prediction: str, human_answers: list[str]) -> float:
    return soft_scores(human_answers).get(normalize_answer(prediction), 0.0)
