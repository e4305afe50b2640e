"""Reading one batch of TRL reward arguments: a completion's text and the dataset columns the rewards use.

Reward functions follow TRL 1.16's calling convention (``GRPOTrainer._calculate_rewards``)::

    fn(prompts=..., completions=..., completion_ids=..., solution=[...], question=[...], choices=[...],
       trainer_state=..., log_extra=..., log_metric=..., <other dataset columns>) -> list[float | None]

Completions are plain strings or conversational lists (``[{"role": "assistant", "content": ...}]``). The
dataset columns are those of :class:`embodied_r.training.rows.TrainingRow`: ``solution`` (the letter, or a
number for numeric rows), ``question`` (the question with its lettered choices, no video text) and
``choices`` (the option letters; empty for numeric rows).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = ["choices_column", "column_values", "completion_text", "solution_column"]

_LETTER_RE = re.compile(r"^[A-H]$")


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, or TRL's conversational ``[{"role": "assistant", "content": …}]``.

    Content given as parts (``[{"type": "text", "text": …}]``) is joined; several assistant messages are joined.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    texts: list[str] = []
    for message in completion:
        if message.get("role", "assistant") != "assistant":
            continue
        content = message.get("content", "")
        if isinstance(content, str):
            texts.append(content)
        else:
            texts.extend(part.get("text", "") for part in content if part.get("type", "text") == "text")
    return "".join(texts)


def column_values(kwargs: dict[str, Any], name: str, n: int) -> list[Any] | None:
    """Column ``name`` of the batch as ``n`` values (a scalar is repeated), or ``None`` when it is absent."""
    values = kwargs.get(name)
    if values is None:
        return None
    if isinstance(values, str) or not isinstance(values, Sequence):
        return [values] * n
    if len(values) != n:
        raise ValueError(f"column {name!r} has {len(values)} values for {n} completions")
    return list(values)


def solution_column(solution: Any, n: int) -> list[str]:
    """The ``solution`` column as ``n`` stripped strings (every reward needs it)."""
    values = column_values({"solution": solution}, "solution", n)
    if values is None:
        raise ValueError("the reward functions need the 'solution' column")
    return [str(v).strip() for v in values]


def choices_column(kwargs: dict[str, Any], solutions: list[str], n: int) -> list[tuple[str, ...]]:
    """Each row's option letters: the ``choices`` column, else inferred (a letter solution → A–H, else numeric)."""
    column = kwargs.get("choices")
    if column is not None:
        if len(column) != n:
            raise ValueError(f"column 'choices' has {len(column)} values for {n} completions")
        return [tuple(str(c).strip().upper() for c in (row or ())) for row in column]
    return [tuple("ABCDEFGH") if _LETTER_RE.match(s.upper()) else () for s in solutions]
