"""The base of every ``params.yaml`` section (unknown keys refused, frozen) and the category-list check."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, ConfigDict

from embodied_r.vocabulary import (
    unknown_categories_message,
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_category_list(value: tuple[str, ...], valid: tuple[str, ...], what: str) -> tuple[str, ...]:
    """A category list that is non-empty, names each category once and only names categories of ``valid``."""
    if not value:
        raise ValueError("must name at least one task category")
    twice = sorted(c for c, n in Counter(value).items() if n > 1)
    if twice:
        raise ValueError(f"categories listed twice: {twice}")
    message = unknown_categories_message(value, valid, what=what)
    if message:
        raise ValueError(message)
    return value
