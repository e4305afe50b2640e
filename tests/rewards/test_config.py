"""``params.yaml``'s ``rewards:`` section: the paper's defaults, clear errors, and no training stack on import."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from embodied_r.rewards.config import JudgeConfig, RewardSchedule, RewardsConfig


def test_rewards_config_defaults_are_the_paper() -> None:
    cfg = RewardsConfig()
    assert cfg.format_partial_credit == 0.0
    assert cfg.accuracy_mode == "answer_tag"
    assert cfg.schedule == RewardSchedule.paper()
    assert cfg.judge.backend == "policy_init"
    assert cfg.judge.temperature == 0.1
    with pytest.raises(ValidationError):
        RewardsConfig(unknown_key=1)  # type: ignore[call-arg]


def test_rewards_config_validation_errors() -> None:
    with pytest.raises(ValidationError, match=r"judge\.backend is 'none'"):
        RewardsConfig(judge=JudgeConfig(backend="none"))
    with pytest.raises(ValidationError, match="base_url"):
        JudgeConfig(backend="openai", model="m")
    with pytest.raises(ValidationError, match="checkpoint path"):
        JudgeConfig(backend="local")
    with pytest.raises(ValidationError, match="environment variable") as info:
        JudgeConfig(api_key_env="sk-live-123")
    assert "sk-live-123" not in str(info.value)  # a key pasted by mistake is not echoed


def test_importing_the_rewards_loads_no_training_stack() -> None:
    """The config schema (embodied_r.config) imports embodied_r.rewards.config: it must not pull in torch."""
    code = (
        "import sys, embodied_r.rewards.config, embodied_r.rewards; "
        "heavy = sorted(m for m in ('torch', 'transformers', 'trl', 'openai') if m in sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
