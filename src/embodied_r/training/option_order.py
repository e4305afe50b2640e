"""Spreading the training split's correct letters evenly over the options (``training_set.option_order``).

Not in the paper (option_order ``as_given``). A benchmark's correct letters are rarely uniform — the embedded
``cpu-long`` test split has B and C at 27.8% each and D at 17.6% — and a small policy trained by GRPO on a few
hundred prompts learns that prior long before it learns anything about the questions: every measured CPU run
ended answering one letter to every question and scoring exactly the best constant letter. With ``balanced``,
each TRAIN question's options are reordered so that, within every category, each letter is the correct one
equally often (to within one); a constant letter then earns 1/n of the training reward whatever the letter, and
only reading the question pays. Validation and test questions keep their order, so evaluation is the paper's.

The reordering moves only the correct option: it is taken out and put back at its new letter, the others keep
their relative order (ordered options such as distances stay ordered around it). The frame descriptions are
untouched — a VLM describes what the question *names*, not its letters.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from embodied_r.data.records import format_choices, parse_choices


class OptionLayoutError(ValueError):
    """The question's options are not its last lines, one per letter in order (``A. text``)."""


class _Question(Protocol):
    """What :func:`balanced_letters` reads of a question (a described sample, a training row, ...)."""

    question_id: str
    category: str
    choices: list[str]


def move_correct_option(question: str, answer: str, target: str) -> str:
    """``question`` with the option of letter ``answer`` moved to letter ``target``; the others keep their order.

    >>> move_correct_option("Where is the door?\\nA. left\\nB. right\\nC. ahead", "A", "C")
    'Where is the door?\\nA. right\\nB. ahead\\nC. left'

    Raises :class:`OptionLayoutError` when the options are not the question's trailing ``A. text`` lines (the
    layout every adapter writes); the caller keeps such a question as given.
    """
    choices = parse_choices(question)
    letters = list(choices)
    if answer not in choices or target not in choices:
        raise OptionLayoutError(f"letters {answer!r} and {target!r} must both be among the options {letters}")
    lines = question.splitlines()
    n = len(letters)
    if lines[-n:] != format_choices(choices).splitlines():
        raise OptionLayoutError("the options are not the question's last lines, one 'A. text' line per letter")
    texts = [choices[letter] for letter in letters]
    correct = texts.pop(letters.index(answer))
    texts.insert(letters.index(target), correct)
    return "\n".join([*lines[:-n], format_choices(dict(zip(letters, texts, strict=True)))])


def _tie_break(question_id: str, ties: list[str]) -> str:
    """One of ``ties``, picked by a hash of the question id (the same for the same id, spread over ids)."""
    return ties[int.from_bytes(hashlib.sha256(question_id.encode()).digest()[:8], "big") % len(ties)]


def least_used(used: Counter[str], letters: Sequence[str], choose: Callable[[list[str]], str]) -> str:
    """A letter of ``letters`` used least so far in ``used`` (``choose`` picks among ties); counted in ``used``."""
    fewest = min(used[letter] for letter in letters)
    letter = choose([c for c in letters if used[c] == fewest])
    used[letter] += 1
    return letter


def balanced_letters(questions: Iterable[_Question]) -> dict[str, str]:
    """The correct letter each question gets so that, per category, every letter is correct equally often.

    Questions are taken in question-id order; each gets, among its own letters, one used least so far in its
    category (ties broken by a hash of its id, so the result depends only on the ids). A category whose questions
    all have the same options ends with letter counts that differ by at most one; with mixed option counts (2, 3
    and 4) the pass is greedy, so the balance depends on how they interleave in id order (within one when they do).

    >>> from types import SimpleNamespace as Q
    >>> qs = [Q(question_id=f"q{i}", category="c", choices=["A", "B", "C", "D"]) for i in range(8)]
    >>> sorted(Counter(balanced_letters(qs).values()).items())
    [('A', 2), ('B', 2), ('C', 2), ('D', 2)]
    """
    used: dict[str, Counter[str]] = {}
    targets: dict[str, str] = {}
    for q in sorted(questions, key=lambda q: q.question_id):
        counts = used.setdefault(q.category, Counter())
        targets[q.question_id] = least_used(counts, q.choices, lambda ties, qid=q.question_id: _tie_break(qid, ties))
    return targets


__all__ = ["OptionLayoutError", "balanced_letters", "least_used", "move_correct_option"]
