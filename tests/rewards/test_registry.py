"""The one registry: the reward list built from config, TRL's calling convention, and TRL's own reward code."""

from __future__ import annotations

import pytest

from embodied_r.rewards import (
    REWARD_FACTORIES,
    REWARD_NAMES,
    RewardsConfig,
    build_reward_funcs,
    make_accuracy_reward,
    make_format_reward,
)
from embodied_r.rewards.config import JudgeConfig, RewardSchedule
from embodied_r.rewards.schedule import weights_for
from tests.rewards.helpers import ABCD, QUESTION, RIGHT, WRONG, ScriptedJudge


def test_rewards_accept_trl_keyword_arguments_and_have_stable_names() -> None:
    from trl.trainer.utils import get_callable_name

    judge = ScriptedJudge(["B"])
    funcs, names = build_reward_funcs(RewardsConfig(), judge=judge)
    assert names == ["format", "accuracy", "consistency"]
    assert [get_callable_name(f) for f in funcs] == names
    trl_kwargs = {  # what GRPOTrainer._calculate_rewards passes
        "prompts": [[{"role": "user", "content": "video text ... " + QUESTION}]],
        "completions": [[{"role": "assistant", "content": "<think>It is on my right.</think><answer>B</answer>"}]],
        "completion_ids": [[1, 2, 3]],
        "solution": ["B"],
        "question": [QUESTION],
        "choices": [ABCD],
        "category": ["object_rel_direction"],
        "trainer_state": None,
        "log_extra": lambda column, values: None,
        "log_metric": lambda name, value: None,
    }
    assert [f(**trl_kwargs) for f in funcs] == [[1.0], [1.0], [1.0]]


def test_registry_names_factories() -> None:
    assert tuple(REWARD_FACTORIES) == REWARD_NAMES == ("format", "accuracy", "consistency")  # the schedule's order
    assert REWARD_FACTORIES["format"](RewardsConfig(format_partial_credit=0.5), None).partial_credit == 0.5
    assert REWARD_FACTORIES["accuracy"](RewardsConfig(accuracy_mode="official_scan"), None).mode == "official_scan"
    assert REWARD_FACTORIES["consistency"](RewardsConfig(), None) is None  # no judge, no consistency reward
    with pytest.raises(ValueError):
        make_format_reward(partial_credit=2.0)
    with pytest.raises(ValueError):
        make_accuracy_reward("anywhere")  # type: ignore[arg-type]


def test_build_reward_funcs_builds_from_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A factory registered under a schedule name is what build_reward_funcs returns (nothing hard-coded)."""

    def length_penalty(completions: list[str], **kwargs: object) -> list[float | None]:
        return [-float(len(c)) for c in completions]

    seen: list[RewardsConfig] = []
    monkeypatch.setitem(REWARD_FACTORIES, "format", lambda cfg, judge: seen.append(cfg) or length_penalty)
    cfg = RewardsConfig(schedule=RewardSchedule.constant((1.0, 1.0, 0.0)), judge=JudgeConfig(backend="none"))
    funcs, names = build_reward_funcs(cfg)
    assert names == ["format", "accuracy"]
    assert funcs[0] is length_penalty and seen == [cfg]


def test_build_reward_funcs_without_a_judge() -> None:
    cfg = RewardsConfig(schedule=RewardSchedule.constant((1.0, 1.0, 0.0)), judge=JudgeConfig(backend="none"))
    funcs, names = build_reward_funcs(cfg)
    assert names == ["format", "accuracy"] == [f.__name__ for f in funcs]
    assert weights_for(cfg.schedule, names, step_fraction=0.3) == [0.5, 0.5]
    with pytest.raises(ValueError, match="policy_model_path"):
        build_reward_funcs(RewardsConfig())


# ---------------------------------------------------------------------------------------------------------------------
# Contract with the pinned TRL: its own reward-calling code, on a stand-in trainer
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_trl_calculate_rewards_turns_a_failed_judge_into_nan_and_logs_its_counts() -> None:
    """``GRPOTrainer._calculate_rewards`` (TRL 1.16) on our functions: None → NaN, counts → trainer metrics."""
    from collections import defaultdict
    from types import SimpleNamespace

    from accelerate import Accelerator
    from transformers import TrainerState
    from trl import GRPOTrainer

    funcs, names = build_reward_funcs(RewardsConfig(), judge=ScriptedJudge([RuntimeError("judge down")]))
    metrics: dict[str, list[float]] = defaultdict(list)
    trainer = SimpleNamespace(
        accelerator=Accelerator(cpu=True),
        args=SimpleNamespace(report_to=[]),
        state=TrainerState(global_step=100, max_steps=120, epoch=10.0),  # stage 1:7:2, the judge is asked
        reward_funcs=funcs,
        reward_processing_classes=[None] * len(funcs),
        reward_func_names=names,
        environments=None,
        _log_completion_extra=lambda column, values: None,
        _log_metric=lambda name, value: metrics[name].append(value),
    )
    row = {
        "prompt": [{"role": "user", "content": "video text"}],
        "solution": "B",
        "question": QUESTION,
        "choices": ABCD,
    }
    completions = [[{"role": "assistant", "content": RIGHT}], [{"role": "assistant", "content": WRONG}]]
    rewards = GRPOTrainer._calculate_rewards(trainer, [row, row], [row["prompt"]] * 2, completions, [[1], [2]])
    assert rewards[0, :2].tolist() == [1.0, 1.0] and rewards[0, 2].isnan()  # the failed judge call: NaN, not 0
    assert rewards[1].tolist() == [1.0, 0.0, 0.0]
    assert metrics["judge/failures"] == [1.0] and metrics["judge/calls"] == [1.0]
