"""What every question generator shares: the draft of a question, one video's context, and the seeded
:class:`Balancer` that balances answer letters, answer labels and answer texts across the dataset."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embodied_r.data.synthetic.geometry import visibility_matrix


@dataclass
class Draft:
    """A question before letters are assigned. ``stem`` may contain ``{options}`` (choices in letter order)."""

    stem: str
    answer: str
    distractors: list[str]
    label: str
    level: str | None = None
    tally: tuple[tuple[Any, ...], ...] = ()  # further ``Balancer.label_usage`` keys counted once the question is kept
    key: Any = None  # what makes two questions of a video the same; default ``(stem, answer)``


@dataclass
class VideoContext:
    """What the generators need about one video."""

    gt: dict[str, Any]
    visibility: np.ndarray  # frames × objects
    seen: list[int]
    first_frame: dict[int, int]

    @classmethod
    def from_gt(cls, gt: dict[str, Any]) -> VideoContext:
        """Compute per-frame visibility and first appearances."""
        vis = visibility_matrix(gt)
        seen = [j for j in range(vis.shape[1]) if vis[:, j].any()]
        first = {j: int(np.argmax(vis[:, j])) for j in seen}
        return cls(gt, vis, seen, first)

    def obj(self, j: int) -> dict[str, Any]:
        """The j-th object of the ground truth."""
        return self.gt["objects"][j]

    def center(self, j: int) -> np.ndarray:
        """Centre of the j-th object."""
        return np.asarray(self.gt["objects"][j]["center"], dtype=float)

    def name(self, j: int) -> str:
        """Name of the j-th object."""
        return self.gt["objects"][j]["name"]


@dataclass
class Balancer:
    """Seeded bookkeeping that balances answer letters and answer labels across the dataset."""

    rng: np.random.Generator
    label_usage: Counter = field(default_factory=Counter)
    _letter_queues: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    level_counter: int = 0
    run_pool: list[tuple[str, int]] = field(default_factory=list)  # real action runs, for planned steps
    answer_texts: Counter = field(default_factory=Counter)
    choice_share: Counter = field(default_factory=Counter)

    def letter_index(self, category: str, n_choices: int) -> int:
        """Next correct-answer position for this category and choice count (cycles through permutations)."""
        queue = self._letter_queues.setdefault((category, n_choices), [])
        if not queue:
            queue.extend(int(i) for i in self.rng.permutation(n_choices))
        return queue.pop()

    def pick(
        self,
        category: str,
        candidates: Sequence[tuple[str, Any]],
        universe: Sequence[str] | None = None,
        slack: int = 0,
    ) -> tuple[str, Any] | None:
        """Among ``(label, payload)`` candidates, pick one of a least-used label (ties broken by the rng).

        With ``universe`` (all labels of the category), a label is only allowed while its usage is at most
        ``slack`` above the least-used label of the universe, so rarely possible labels cannot fall behind.
        """
        if universe is not None and candidates:
            floor = min(self.label_usage[(category, label)] for label in universe) + slack
            candidates = [c for c in candidates if self.label_usage[(category, c[0])] <= floor]
        if not candidates:
            return None
        labels = sorted({label for label, _ in candidates})
        least = min(self.label_usage[(category, label)] for label in labels)
        best = [label for label in labels if self.label_usage[(category, label)] == least]
        label = best[int(self.rng.integers(len(best)))]
        pool = [c for c in candidates if c[0] == label]
        return pool[int(self.rng.integers(len(pool)))]

    def text_excess(self, category: str, text: str) -> float:
        """How much more often ``text`` was the answer of the category than its share of the choices shown."""
        return self.answer_texts[(category, text)] - self.choice_share[(category, text)]

    def not_overused(self, category: str, candidates: Sequence[tuple[str, Any]]) -> tuple[str, Any] | None:
        """A random ``(answer text, payload)`` candidate whose answer text is not over-used (``text_excess`` ≤ 0),
        else one of the smallest excess, so no answer text becomes a frequent-answer shortcut."""
        if not candidates:
            return None
        excess = [self.text_excess(category, text) for text, _ in candidates]
        cap = max(0.0, min(excess))
        pool = [c for c, e in zip(candidates, excess, strict=True) if e <= cap]
        return pool[int(self.rng.integers(len(pool)))]

    def distractors(self, category: str, texts: Sequence[str], k: int) -> list[str]:
        """``k`` of ``texts``: over-used answer texts (``text_excess`` > 0) first, the rest at random, so a text
        that was often the answer is also often shown as a wrong choice."""
        order = [texts[int(i)] for i in self.rng.permutation(len(texts))]
        return sorted(order, key=lambda text: self.text_excess(category, text) <= 0)[:k]

    def shown(self, category: str, answer: str, choices: Sequence[str]) -> None:
        """Record the answer text and the choice texts of an emitted question."""
        self.answer_texts[(category, answer)] += 1
        for text in choices:
            self.choice_share[(category, text)] += 1.0 / len(choices)

    def used(self, category: str, label: str) -> None:
        """Record that a question with this answer label was emitted."""
        self.label_usage[(category, label)] += 1


Generator = Callable[[VideoContext, Balancer], Draft | None]
