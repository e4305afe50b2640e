"""The format reward (reference §5): ``<think>…</think><answer>…</answer>`` and nothing else."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from embodied_r.rewards.completions import completion_text

__all__ = ["FormatReward", "format_reward", "make_format_reward"]

# One tag-free stretch of non-blank text: no <think>, </think>, <answer> or </answer> inside.
_TAG_FREE = r"(?:(?!</?(?:think|answer)>).)*?\S(?:(?!</?(?:think|answer)>).)*?"
_STRICT_FORMAT_RE = re.compile(rf"^\s*<think>{_TAG_FREE}</think>\s*<answer>{_TAG_FREE}</answer>\s*$", re.DOTALL)
_THINK_PAIR_RE = re.compile(r"<think>.*?</think>", re.DOTALL)
_ANSWER_PAIR_RE = re.compile(r"<answer>.*?</answer>", re.DOTALL)


class FormatReward:
    """1.0 iff the completion is ``<think>…</think>`` then ``<answer>…</answer>`` and nothing else.

    Strict (the paper): whitespace may surround and separate the blocks; nothing else may come before
    ``<think>``, between the blocks or after ``</answer>``; exactly one of each tag, not nested; both blocks
    hold some non-blank text (an empty ``<think>`` would pay for dropping the reasoning). Tags are lower case.

    ``partial_credit`` (0 = strict, the default) helps small models find the format: a completion that is not
    strictly formatted but holds a complete ``<think>…</think>`` followed by a complete ``<answer>…</answer>``
    (text around or between them, repeated or empty blocks) earns ``partial_credit``; one with only one of
    the two complete blocks earns ``partial_credit / 2``.
    """

    def __init__(self, partial_credit: float = 0.0, name: str = "format") -> None:
        if not 0.0 <= partial_credit <= 1.0:
            raise ValueError(f"partial_credit must be in [0, 1], got {partial_credit}")
        self.partial_credit = partial_credit
        self.__name__ = name

    def score(self, text: str) -> float:
        """The format reward of one completion's text."""
        if _STRICT_FORMAT_RE.match(text):
            return 1.0
        if self.partial_credit == 0.0:
            return 0.0
        think = _THINK_PAIR_RE.search(text)
        answer = _ANSWER_PAIR_RE.search(text, think.end()) if think else None
        if think and answer:
            return self.partial_credit
        if think or _ANSWER_PAIR_RE.search(text):
            return self.partial_credit / 2
        return 0.0

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        return [self.score(completion_text(c)) for c in completions]

    def __repr__(self) -> str:
        return f"FormatReward(partial_credit={self.partial_credit})"


def make_format_reward(partial_credit: float = 0.0) -> FormatReward:
    """The format reward; ``partial_credit=0`` is the paper's strict reward (see :class:`FormatReward`)."""
    return FormatReward(partial_credit)


#: The paper's strict format reward, ready to pass to TRL.
format_reward = make_format_reward()
