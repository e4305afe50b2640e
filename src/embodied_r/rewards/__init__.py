"""The GRPO rewards of Embodied-R (reference §5): format, accuracy and logical consistency, and their schedule.

One module per job, as open-r1 and verl write rewards:

- :mod:`~embodied_r.rewards.format`, :mod:`~embodied_r.rewards.accuracy`: pure scoring functions over completions;
- :mod:`~embodied_r.rewards.consistency`: the consistency reward, asking a judge;
- :mod:`~embodied_r.rewards.judges`: the judge backends (frozen local LM, OpenAI-compatible server);
- :mod:`~embodied_r.rewards.schedule`: the reward names in weight order, training progress, weights by name;
- :mod:`~embodied_r.rewards.config`: ``params.yaml``'s ``rewards:`` section (pydantic only);
- :mod:`~embodied_r.rewards.completions`: reading TRL's reward arguments.

Reward functions follow TRL 1.16's calling convention (see :mod:`~embodied_r.rewards.completions`) and return
``list[float | None]``. ``None`` means "not applicable / not scored". TRL turns it into NaN: the per-reward metric
(``rewards/<name>/mean``) is a ``nanmean``, so it excludes the row, and the weighted sum is a ``nansum``, so
a ``None`` contributes **nothing** to that completion's total (the same as 0 for the advantage). A completion
for which every reward is ``None`` gets advantage 0. The consistency reward returns ``None`` when the judge
call failed — never a silent 0 — and the failure is counted in ``judge.stats``, logged at WARNING, and
reported through TRL's ``log_metric`` as ``judge/failures`` etc.

:data:`REWARD_FACTORIES` (name → factory) is the one registry: :func:`build_reward_funcs` builds the reward list
from it, in the schedule's order. This package exports the registry, the reward functions and what builds them
(config, judge); the judges, the schedule and the config models are imported from their modules. Importing it
loads no torch, transformers or openai.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from embodied_r.rewards.accuracy import accuracy_reward, make_accuracy_reward
from embodied_r.rewards.config import RewardsConfig
from embodied_r.rewards.consistency import make_consistency_reward
from embodied_r.rewards.format import format_reward, make_format_reward
from embodied_r.rewards.judges import ConsistencyJudge, build_judge
from embodied_r.rewards.schedule import REWARD_NAMES

logger = logging.getLogger(__name__)

__all__ = [
    "REWARD_FACTORIES",
    "REWARD_NAMES",
    "RewardFactory",
    "RewardFunc",
    "RewardsConfig",
    "accuracy_reward",
    "build_judge",
    "build_reward_funcs",
    "format_reward",
    "make_accuracy_reward",
    "make_consistency_reward",
    "make_format_reward",
]

RewardFunc = Callable[..., list[float | None]]
#: ``factory(cfg, judge)`` → the reward function, or ``None`` when the config leaves that reward out.
RewardFactory = Callable[[RewardsConfig, ConsistencyJudge | None], RewardFunc | None]


def _format(cfg: RewardsConfig, judge: ConsistencyJudge | None) -> RewardFunc:
    return make_format_reward(cfg.format_partial_credit)


def _accuracy(cfg: RewardsConfig, judge: ConsistencyJudge | None) -> RewardFunc:
    return make_accuracy_reward(cfg.accuracy_mode)


def _consistency(cfg: RewardsConfig, judge: ConsistencyJudge | None) -> RewardFunc | None:
    if judge is None:  # judge.backend "none": RewardsConfig already refused a schedule that weights it
        return None
    return make_consistency_reward(
        judge, mode=cfg.accuracy_mode, schedule=cfg.schedule, skip_when_unweighted=cfg.skip_judge_when_unweighted
    )


#: Name → factory, one per reward of the paper, in the schedule's weight order (:data:`REWARD_NAMES`).
REWARD_FACTORIES: dict[str, RewardFactory] = {
    "format": _format,
    "accuracy": _accuracy,
    "consistency": _consistency,
}


def build_reward_funcs(
    cfg: RewardsConfig,
    judge: ConsistencyJudge | None = None,
    *,
    policy_model_path: str | None = None,
) -> tuple[list[RewardFunc], list[str]]:
    """The reward functions for ``GRPOTrainer(reward_funcs=...)`` and their names, in schedule order.

    Each of :data:`REWARD_NAMES` is made by its :data:`REWARD_FACTORIES` entry from ``cfg``. ``names`` is a
    sub-sequence of ``("format", "accuracy", "consistency")`` — consistency is left out when
    ``cfg.judge.backend`` is ``"none"`` and no ``judge`` is given — and equals each function's ``__name__``
    (TRL logs ``rewards/<name>/mean``). Align the weights with :func:`embodied_r.rewards.schedule.weights_for`.
    Without ``judge``, one is built from ``cfg.judge`` (``policy_model_path`` for ``policy_init``).
    """
    if judge is None:
        judge = build_judge(cfg.judge, policy_model_path=policy_model_path)
    funcs: list[RewardFunc] = []
    names: list[str] = []
    for name in REWARD_NAMES:
        func = REWARD_FACTORIES[name](cfg, judge)
        if func is not None:
            funcs.append(func)
            names.append(name)
    logger.info("rewards: %s (accuracy mode %s)", ", ".join(names), cfg.accuracy_mode)
    return funcs, names
