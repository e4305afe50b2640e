"""The reward-weight schedule (reference §5: 7:3:0 → 3:7:0 → 1:7:2): stages, progress, weights by name."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from embodied_r.rewards.config import RewardSchedule, RewardsConfig, RewardStage
from embodied_r.rewards.schedule import training_progress, weights_for
from tests.rewards.helpers import FakeTrainerState


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (0.0, (7, 3, 0)),
        (1.0, (7, 3, 0)),
        (1.99, (7, 3, 0)),
        (2.0, (3, 7, 0)),  # two epochs done: the paper's epoch 3 begins
        (2.01, (3, 7, 0)),
        (4.0, (1, 7, 2)),
        (5.0, (1, 7, 2)),
        (12.0, (1, 7, 2)),
        (13.0, (1, 7, 2)),  # past the plan: the last stage holds
    ],
)
def test_schedule_at_epoch_boundaries(epoch: float, expected: tuple[int, int, int]) -> None:
    schedule = RewardSchedule.paper(unit="epoch")
    assert schedule.weights_at(epoch=epoch, normalise=False) == expected
    assert schedule.weights_at(epoch=epoch) == pytest.approx(tuple(w / 10 for w in expected))


@pytest.mark.parametrize(
    ("step", "max_steps", "expected"),
    [
        (0, 120, (7, 3, 0)),
        (19, 120, (7, 3, 0)),
        (20, 120, (3, 7, 0)),  # 20/120 == 2/12
        (39, 120, (3, 7, 0)),
        (40, 120, (1, 7, 2)),
        (120, 120, (1, 7, 2)),
        (1, 6, (3, 7, 0)),  # a 6-step smoke run keeps the proportions
        (2, 6, (1, 7, 2)),
    ],
)
def test_schedule_at_step_fractions(step: int, max_steps: int, expected: tuple[int, int, int]) -> None:
    schedule = RewardSchedule.paper()
    epoch, fraction = training_progress(FakeTrainerState(step, max_steps, 0.0))
    assert schedule.weights_at(epoch=epoch, step_fraction=fraction, normalise=False) == expected


def test_schedule_weights_for_names_and_validation() -> None:
    schedule = RewardSchedule.paper()
    assert weights_for(schedule, ["format", "accuracy", "consistency"], step_fraction=0.9) == pytest.approx(
        [0.1, 0.7, 0.2]
    )  # the official launch's --reward_weights (format 0.1, accuracy 0.7, consistency 0.2)
    assert weights_for(schedule, ["format", "accuracy"], step_fraction=0.0) == pytest.approx([0.7, 0.3])
    with pytest.raises(ValueError, match="step_fraction"):
        schedule.weights_at(epoch=3.0)
    with pytest.raises(ValidationError, match="same unit"):
        RewardSchedule(
            [RewardStage(until_epoch=2, weights=(1, 1, 0)), RewardStage(until_fraction=1, weights=(1, 1, 0))]
        )
    with pytest.raises(ValidationError, match="increase"):
        RewardSchedule([RewardStage(until_epoch=4, weights=(1, 1, 0)), RewardStage(until_epoch=2, weights=(1, 1, 0))])
    with pytest.raises(ValidationError, match=r"1\.0"):
        RewardSchedule([RewardStage(until_fraction=0.5, weights=(1, 1, 0))])
    with pytest.raises(ValidationError, match="exactly one"):
        RewardStage(weights=(1, 1, 0))
    with pytest.raises(ValidationError, match="all be 0"):
        RewardStage(until_fraction=1, weights=(0, 0, 0))


def test_schedule_fractions_from_yaml_strings() -> None:
    cfg = RewardsConfig.model_validate(
        {
            "schedule": [
                {"until_fraction": "2/12", "weights": [7, 3, 0]},
                {"until_fraction": "4/12", "weights": [3, 7, 0]},
                {"until_fraction": 1, "weights": [1, 7, 2]},
            ]
        }
    )
    assert cfg.schedule == RewardSchedule.paper()


def test_training_progress_is_one_function_for_the_trainer_and_the_rewards() -> None:
    """Before training (max_steps 0, no epoch) progress is the start; the trainer's callback reads the same one."""
    from embodied_r.training import schedule as callback_module

    assert training_progress(FakeTrainerState(0, 0, None)) == (0.0, 0.0)  # type: ignore[arg-type]
    assert training_progress(FakeTrainerState(30, 120, 1.5)) == (1.5, 0.25)
    assert training_progress(FakeTrainerState(130, 120, 13.0)) == (13.0, 1.0)  # past the plan: capped
    assert callback_module.training_progress is training_progress
    assert callback_module.weights_for is weights_for
    with pytest.raises(ValueError, match="not in the schedule's order"):
        weights_for(RewardSchedule.paper(), ["length"], 0.0, 0.0)
