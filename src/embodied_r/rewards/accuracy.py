"""The accuracy reward (reference §5): the option letter against the solution; numeric rows by MRA."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, get_args

from embodied_r.answers import AccuracyMode, extract_answer, extract_number, mean_relative_accuracy
from embodied_r.rewards.completions import choices_column, column_values, completion_text, solution_column

__all__ = ["AccuracyReward", "accuracy_reward", "make_accuracy_reward"]


class AccuracyReward:
    """1.0 iff the completion's option letter equals ``solution``; numeric rows are scored with MRA.

    ``mode="answer_tag"`` reads the letter from the last ``<answer>`` block; ``"official_scan"`` reproduces
    the official scan of the whole completion (see :mod:`embodied_r.answers`). Rows with empty ``choices``
    are numeric: the first number in ``<answer>`` against ``float(solution)``, by mean relative accuracy
    (in both modes — the official code has no numeric rows).
    """

    def __init__(self, mode: AccuracyMode = "answer_tag", name: str = "accuracy") -> None:
        if mode not in get_args(AccuracyMode):
            raise ValueError(f"accuracy mode must be one of {get_args(AccuracyMode)}, got {mode!r}")
        self.mode = mode
        self.__name__ = name

    def score(self, text: str, solution: str, choices: Sequence[str], question: str | None = None) -> float:
        """The accuracy reward of one completion's text (``question``: its option texts, for ``answer_text``)."""
        if not choices:
            try:
                truth = float(solution)
            except ValueError as exc:
                raise ValueError(f"numeric row (no choices) with a non-numeric solution {solution!r}") from exc
            return mean_relative_accuracy(extract_number(text), truth)
        letter = extract_answer(text, choices, self.mode, question=question)
        return float(letter is not None and letter == solution.upper())

    def __call__(self, completions: Sequence[Any], solution: Sequence[Any], **kwargs: Any) -> list[float | None]:
        n = len(completions)
        solutions = solution_column(solution, n)
        choices = choices_column(kwargs, solutions, n)
        questions = column_values(kwargs, "question", n) or [None] * n
        return [
            self.score(completion_text(c), s, ch, q)
            for c, s, ch, q in zip(completions, solutions, choices, questions, strict=True)
        ]

    def __repr__(self) -> str:
        return f"AccuracyReward(mode={self.mode!r})"


def make_accuracy_reward(mode: AccuracyMode = "answer_tag") -> AccuracyReward:
    """The accuracy reward reading answers in ``mode`` (see :class:`AccuracyReward`)."""
    return AccuracyReward(mode)


#: The paper's accuracy reward (the letter in ``<answer>``), ready to pass to TRL.
accuracy_reward = make_accuracy_reward()
