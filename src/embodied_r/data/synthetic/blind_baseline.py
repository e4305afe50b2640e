"""Text-only ("blind") baselines: how well can a question be answered without the video?

A synthetic dataset is only useful if it cannot be solved from the question text. The records sorted by
``question_id`` are split into two deterministic halves (even and odd positions); each heuristic is fitted on
one half and scored on the other, both ways round (two-fold cross-fitting), so every record is scored once
by a heuristic that never saw it:

* ``majority_letter``: the most frequent answer letter of the category in the train half;
* ``longest_choice``: the choice with the longest text;
* ``stem_overlap``: the choice sharing the most words with the stem;
* ``frequent_answer_text``: the choice whose text was most often the answer of the category in the train half;
* ``chance``: the expected accuracy of a uniform guess (mean of 1 / number of choices).

Ties go to the earliest letter.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

from embodied_r.data.records import QuestionRecord

_WORD = re.compile(r"[a-z0-9]+")


def _stem(record: QuestionRecord) -> str:
    lines = record.question.splitlines()
    return "\n".join(lines[: max(1, len(lines) - len(record.choices))])


def _argmax(choices: dict[str, str], score: Callable[[str], float]) -> str:
    letters = sorted(choices)
    return max(letters, key=lambda letter: (score(choices[letter]), -letters.index(letter)))


def split_halves(records: Sequence[QuestionRecord]) -> tuple[list[QuestionRecord], list[QuestionRecord]]:
    """Deterministic train/test halves: even/odd positions in ``question_id`` order."""
    ordered = sorted(records, key=lambda r: r.question_id)
    return ordered[0::2], ordered[1::2]


def _heuristics(train: Sequence[QuestionRecord]) -> dict[str, Callable[[QuestionRecord], str]]:
    """The heuristics of the module docstring, fitted on ``train``."""
    letter_counts: dict[str, Counter] = defaultdict(Counter)
    text_counts: dict[str, Counter] = defaultdict(Counter)
    for r in train:
        letter_counts[r.category][r.answer] += 1
        text_counts[r.category][r.choices[r.answer]] += 1

    def majority_letter(r: QuestionRecord) -> str:
        counts = letter_counts.get(r.category, Counter())
        letters = sorted(r.choices)
        return max(letters, key=lambda letter: (counts[letter], -letters.index(letter)))

    def longest_choice(r: QuestionRecord) -> str:
        return _argmax(r.choices, len)

    def stem_overlap(r: QuestionRecord) -> str:
        words = set(_WORD.findall(_stem(r).lower()))
        return _argmax(r.choices, lambda text: len(set(_WORD.findall(text.lower())) & words))

    def frequent_answer_text(r: QuestionRecord) -> str:
        counts = text_counts.get(r.category, Counter())
        return _argmax(r.choices, lambda text: counts[text])

    return {
        "majority_letter": majority_letter,
        "longest_choice": longest_choice,
        "stem_overlap": stem_overlap,
        "frequent_answer_text": frequent_answer_text,
    }


def blind_baseline_accuracy(records: Sequence[QuestionRecord]) -> dict[str, dict[str, float | dict[str, float]]]:
    """Per-category and pooled cross-fitted accuracy of each text-only heuristic.

    Returns ``{heuristic: {"pooled": acc, "per_category": {category: acc}}}`` for the heuristics listed in
    the module docstring (multiple-choice records only), each record scored by the heuristic fitted on the
    other half.
    """
    mc = [r for r in records if r.kind == "multiple_choice"]
    first, second = split_halves(mc)
    folds = [(first, _heuristics(second)), (second, _heuristics(first))]
    categories = sorted({r.category for r in mc})
    out: dict[str, dict[str, float | dict[str, float]]] = {}
    for name in folds[0][1]:
        hits: dict[str, list[bool]] = {c: [] for c in categories}
        for test, heuristics in folds:
            for r in test:
                hits[r.category].append(heuristics[name](r) == r.answer)
        pooled = [h for c in categories for h in hits[c]]
        out[name] = {
            "pooled": sum(pooled) / len(pooled) if pooled else 0.0,
            "per_category": {c: sum(h) / len(h) for c, h in hits.items() if h},
        }
    chance = {c: [1.0 / len(r.choices) for r in mc if r.category == c] for c in categories}
    pooled_chance = [x for c in categories for x in chance[c]]
    out["chance"] = {
        "pooled": sum(pooled_chance) / len(pooled_chance) if pooled_chance else 0.0,
        "per_category": {c: sum(x) / len(x) for c, x in chance.items() if x},
    }
    return out
