"""Applying the reward-weight schedule (7:3:0 → 3:7:0 → 1:7:2, reference §5) inside a running GRPOTrainer.

TRL 1.16 keeps the weights as a float tensor ``GRPOTrainer.reward_weights`` (one entry per reward function) and
reads it each time it scores a generation batch (``rewards_per_func * reward_weights``, a ``nansum``). The
schedule itself is pure (:class:`embodied_r.rewards.config.RewardSchedule`): weights are a function of training
progress, read through :mod:`embodied_r.rewards.schedule` — the same progress and weights the consistency reward
uses to skip its judge while ω_consistency is 0. :class:`RewardScheduleCallback` therefore recomputes them at
the start of every optimizer step — before that step's completions are generated and scored — and copies them
into the tensor in place. Because they depend only on ``TrainerState`` (``epoch``, ``global_step / max_steps``),
a run resumed from a checkpoint continues with the right stage and nothing extra has to be saved.

Each step's weights are also reported as metrics ``schedule/w_<name>`` through TRL's per-batch metric channel
(the one reward functions reach as ``log_metric``), so they land in the same log line — and the same MLflow
step — as the ``rewards/<name>/mean`` they weighted. A change of stage is logged at INFO.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from transformers import TrainerCallback

from embodied_r.rewards.schedule import WeightSchedule, training_progress, weights_for

log = logging.getLogger(__name__)


class RewardScheduleCallback(TrainerCallback):
    """Sets ``trainer.reward_weights`` from ``schedule`` at each optimizer step and logs them as metrics.

    Args:
        trainer: The ``GRPOTrainer`` whose weights to drive (every rank holds its own copy; all compute the same).
        schedule: An object with ``weights_at(epoch=, step_fraction=)`` (a ``WeightSchedule``).
        names: The trainer's reward names, in the order of its reward functions.
    """

    def __init__(self, trainer: Any, schedule: WeightSchedule, names: Sequence[str]) -> None:
        if len(names) != len(trainer.reward_weights):
            raise ValueError(f"{len(names)} reward names for {len(trainer.reward_weights)} reward functions")
        self.trainer = trainer
        self.schedule = schedule
        self.names = list(names)
        self.current: list[float] | None = None
        #: (global_step, weights) at each change of weights, for reports and tests.
        self.switches: list[tuple[int, list[float]]] = []

    def _apply(self, state: Any) -> list[float]:
        epoch, fraction = training_progress(state)
        weights = weights_for(self.schedule, self.names, epoch, fraction)
        if weights != self.current:
            self.trainer.reward_weights.copy_(torch.tensor(weights, dtype=self.trainer.reward_weights.dtype))
            self.switches.append((state.global_step, weights))
            if state.is_world_process_zero:
                log.info(
                    "reward weights %s at step %d/%d (epoch %.2f)",
                    ", ".join(f"{n}={w:.3g}" for n, w in zip(self.names, weights, strict=True)),
                    state.global_step,
                    state.max_steps,
                    epoch,
                )
            self.current = weights
        return weights

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # After a resume the state is already the checkpoint's: the stage follows from it.
        self._apply(state)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        weights = self._apply(state)
        # TRL's metric channel for reward functions: flushed (and averaged over ranks) with this step's rewards.
        for name, weight in zip(self.names, weights, strict=True):
            self.trainer._log_metric(f"schedule/w_{name}", weight)
