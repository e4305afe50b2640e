"""The one reward-weight schedule vocabulary: the reward names in weight order, training progress, weights by name.

A schedule (:class:`embodied_r.rewards.config.RewardSchedule`, reference §5: 7:3:0 → 3:7:0 → 1:7:2) is pure data
that answers ``weights_at(epoch=, step_fraction=)`` with a triple (ω_format, ω_accuracy, ω_consistency). Everything
that reads it goes through this module, so the trainer's callback (:mod:`embodied_r.training.schedule`), which
writes the weights into the running ``GRPOTrainer``, and the consistency reward, which skips its judge while
ω_consistency is 0, see the same progress and the same stage.

Pure Python: no torch, no transformers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["REWARD_NAMES", "WeightSchedule", "Weights", "training_progress", "weights_for"]

#: The reward names, in the order of a schedule's weight triple (ω_format, ω_accuracy, ω_consistency).
REWARD_NAMES: tuple[str, str, str] = ("format", "accuracy", "consistency")

Weights = tuple[float, float, float]


class WeightSchedule(Protocol):
    """Anything with the schedule's ``weights_at`` (e.g. :class:`embodied_r.rewards.config.RewardSchedule`)."""

    def weights_at(self, epoch: float | None = None, step_fraction: float | None = None) -> Weights: ...


def training_progress(state: Any) -> tuple[float, float]:
    """(elapsed epochs, fraction of the run's optimizer steps done) from a ``transformers.TrainerState``.

    Before training starts (no ``epoch``, ``max_steps`` 0) progress is (0.0, 0.0): the first stage.

    >>> from types import SimpleNamespace
    >>> training_progress(SimpleNamespace(epoch=1.5, global_step=30, max_steps=120))
    (1.5, 0.25)
    >>> training_progress(SimpleNamespace(epoch=None, global_step=0, max_steps=0))
    (0.0, 0.0)
    """
    epoch = float(getattr(state, "epoch", None) or 0.0)
    max_steps = getattr(state, "max_steps", 0) or 0
    step = getattr(state, "global_step", 0) or 0
    fraction = min(step / max_steps, 1.0) if max_steps > 0 else 0.0
    return epoch, fraction


def weights_for(
    schedule: WeightSchedule,
    names: Sequence[str],
    epoch: float | None = None,
    step_fraction: float | None = None,
) -> list[float]:
    """The schedule's weights at this progress, aligned with the reward ``names``.

    ``names`` must be drawn from :data:`REWARD_NAMES`; a schedule triple gives the weight of each by name, so a run
    without the consistency reward simply ignores ω_c.

    >>> class Fixed:
    ...     def weights_at(self, epoch=None, step_fraction=None):
    ...         return (0.1, 0.7, 0.2)
    >>> weights_for(Fixed(), ["format", "accuracy"], 0.0, 0.0)
    [0.1, 0.7]
    """
    unknown = [n for n in names if n not in REWARD_NAMES]
    if unknown:
        raise ValueError(f"reward names {unknown} are not in the schedule's order {REWARD_NAMES}")
    triple = schedule.weights_at(epoch=epoch, step_fraction=step_fraction)
    by_name = dict(zip(REWARD_NAMES, triple, strict=True))
    return [float(by_name[n]) for n in names]
