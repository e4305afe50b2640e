"""Configuration of the GRPO rewards (reference §5): the weight schedule, the consistency judge, the reward set.

Pydantic models only: importing this module (or :mod:`embodied_r.rewards`) loads no torch, transformers or openai,
so :mod:`embodied_r.config` can validate ``params.yaml``'s ``rewards:`` section without the training stack.
"""

from __future__ import annotations

import itertools
import math
import re
from fractions import Fraction
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator

from embodied_r.answers import AccuracyMode
from embodied_r.rewards.schedule import Weights

__all__ = [
    "PAPER_STAGES_EPOCH",
    "PAPER_STAGES_FRACTION",
    "JudgeConfig",
    "RewardSchedule",
    "RewardStage",
    "RewardsConfig",
]


def _parse_fraction(value: Any) -> Any:
    """Accept ``"2/12"`` as well as ``0.1666…`` so YAML can state stage boundaries exactly."""
    if isinstance(value, str):
        try:
            return float(Fraction(value.strip()))
        except (ValueError, ZeroDivisionError) as exc:
            raise ValueError(f"not a number or fraction: {value!r}") from exc
    return value


class RewardStage(BaseModel):
    """One stage of the weight schedule: ``weights`` (ω_f, ω_a, ω_c) apply until ``until_epoch`` or ``until_fraction``.

    Give exactly one bound. ``until_epoch`` counts elapsed epochs as TRL's ``state.epoch`` does (0 at the
    start, 2.0 when two epochs are done), so the paper's "epochs 1–2" is ``until_epoch: 2``.
    ``until_fraction`` is a fraction of the run's optimizer steps (``"2/12"`` is accepted).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    until_epoch: float | None = Field(None, gt=0)
    until_fraction: float | None = Field(None, gt=0, le=1)
    weights: tuple[float, float, float] = Field(description="(format, accuracy, consistency), non-negative.")

    @field_validator("until_fraction", mode="before")
    @classmethod
    def _fraction(cls, value: Any) -> Any:
        return _parse_fraction(value)

    @field_validator("weights")
    @classmethod
    def _check_weights(cls, weights: Weights) -> Weights:
        if any(w < 0 or not math.isfinite(w) for w in weights):
            raise ValueError(f"weights must be finite and >= 0, got {weights}")
        if sum(weights) == 0:
            raise ValueError("weights must not all be 0")
        return weights

    @model_validator(mode="after")
    def _one_bound(self) -> RewardStage:
        if (self.until_epoch is None) == (self.until_fraction is None):
            raise ValueError("give exactly one of until_epoch or until_fraction")
        return self

    @property
    def bound(self) -> float:
        """The stage's upper bound, in its unit."""
        return self.until_epoch if self.until_epoch is not None else self.until_fraction  # type: ignore[return-value]


#: The paper's schedule 7:3:0 (epochs 1–2) → 3:7:0 (3–4) → 1:7:2 (5–12), as fractions of a 12-epoch run.
PAPER_STAGES_FRACTION: tuple[RewardStage, ...] = (
    RewardStage(until_fraction=2 / 12, weights=(7.0, 3.0, 0.0)),
    RewardStage(until_fraction=4 / 12, weights=(3.0, 7.0, 0.0)),
    RewardStage(until_fraction=1.0, weights=(1.0, 7.0, 2.0)),
)
#: The same schedule at the paper's epoch boundaries.
PAPER_STAGES_EPOCH: tuple[RewardStage, ...] = (
    RewardStage(until_epoch=2, weights=(7.0, 3.0, 0.0)),
    RewardStage(until_epoch=4, weights=(3.0, 7.0, 0.0)),
    RewardStage(until_epoch=12, weights=(1.0, 7.0, 2.0)),
)

# Progress within this distance below a bound already counts as past it (20/120 steps vs 2/12).
_BOUND_EPS = 1e-9


class RewardSchedule(RootModel[tuple[RewardStage, ...]]):
    """The reward weights over training: a list of stages, each applying until its bound (pure, no state).

    Stage ``i`` applies to progress in ``[bound_{i-1}, bound_i)``; progress past the last bound keeps the last
    stage (a run longer than planned, or the final step). The weights are the paper's ratios as given
    (7:3:0, …); :meth:`weights_at` normalises them to sum 1 by default, which is the scale the official
    launch used (``--reward_weights 0.7 0.1 0.2`` for accuracy, format, consistency = 1:7:2). With TRL's
    default per-group reward scaling the overall scale does not change the advantages.

    >>> s = RewardSchedule.paper()
    >>> s.weights_at(step_fraction=0.0)
    (0.7, 0.3, 0.0)
    >>> s.weights_at(step_fraction=0.5, normalise=False)
    (1.0, 7.0, 2.0)
    """

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="after")
    def _check_stages(self) -> RewardSchedule:
        stages = self.root
        if not stages:
            raise ValueError("the reward schedule needs at least one stage")
        units = {"epoch" if s.until_epoch is not None else "fraction" for s in stages}
        if len(units) > 1:
            raise ValueError("all stages must use the same unit: until_epoch everywhere or until_fraction everywhere")
        bounds = [s.bound for s in stages]
        if any(b2 <= b1 for b1, b2 in itertools.pairwise(bounds)):
            raise ValueError(f"stage bounds must increase strictly, got {bounds}")
        if self.unit == "fraction" and abs(bounds[-1] - 1.0) > _BOUND_EPS:
            raise ValueError(f"the last until_fraction must be 1.0 (the whole run), got {bounds[-1]}")
        return self

    @classmethod
    def paper(cls, unit: Literal["fraction", "epoch"] = "fraction") -> RewardSchedule:
        """The paper's 7:3:0 → 3:7:0 → 1:7:2 schedule, as run fractions (default) or at epochs 2, 4, 12."""
        return cls(PAPER_STAGES_FRACTION if unit == "fraction" else PAPER_STAGES_EPOCH)

    @classmethod
    def constant(cls, weights: Weights) -> RewardSchedule:
        """One stage with fixed weights for the whole run."""
        return cls((RewardStage(until_fraction=1.0, weights=weights),))

    @property
    def unit(self) -> Literal["epoch", "fraction"]:
        """``"epoch"`` or ``"fraction"``: what the stage bounds count."""
        return "epoch" if self.root[0].until_epoch is not None else "fraction"

    @property
    def stages(self) -> tuple[RewardStage, ...]:
        """The stages, in order."""
        return self.root

    def stage_index(self, epoch: float | None = None, step_fraction: float | None = None) -> int:
        """The index of the stage in force at this progress (see :meth:`weights_at`)."""
        progress = epoch if self.unit == "epoch" else step_fraction
        if progress is None:
            needed = "epoch" if self.unit == "epoch" else "step_fraction"
            raise ValueError(f"this schedule's stages are bounded by {self.unit}: pass {needed}=")
        if progress < 0 or not math.isfinite(progress):
            raise ValueError(f"progress must be finite and >= 0, got {progress}")
        for i, stage in enumerate(self.root):
            if progress < stage.bound - _BOUND_EPS:
                return i
        return len(self.root) - 1

    def weights_at(
        self, epoch: float | None = None, step_fraction: float | None = None, *, normalise: bool = True
    ) -> Weights:
        """(ω_f, ω_a, ω_c) at this point of training.

        Args:
            epoch: Elapsed epochs (TRL's ``state.epoch``), used by epoch-bounded schedules.
            step_fraction: ``global_step / max_steps``, used by fraction-bounded schedules.
            normalise: Divide by the sum (default), or return the ratios as configured.
        """
        weights = self.root[self.stage_index(epoch, step_fraction)].weights
        if not normalise:
            return weights
        total = sum(weights)
        return (weights[0] / total, weights[1] / total, weights[2] / total)

    def needs_consistency(self) -> bool:
        """Whether any stage gives the consistency reward a weight."""
        return any(stage.weights[2] > 0 for stage in self.root)


_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class JudgeConfig(BaseModel):
    """The frozen reference LM that checks think–answer consistency.

    Backends: ``"policy_init"`` (default, as the paper: the policy's initial checkpoint, loaded locally and
    never trained — the official code queried qwen2.5-vl-3b-instruct, the base of its policy), ``"local"``
    (another local checkpoint, ``model`` is its path), ``"openai"`` (an OpenAI-compatible server such as vLLM:
    ``base_url`` and ``model``; the key is read from the environment variable named by ``api_key_env``, which
    may stay unset only for a server on this machine — :mod:`embodied_r.openai_client`, the perception VLM's
    policy too), ``"none"`` (no consistency reward; only valid if no stage weights it).
    """

    # hide_input_in_errors: a key pasted into api_key_env by mistake must not be echoed in the error.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    backend: Literal["policy_init", "local", "openai", "none"] = "policy_init"
    model: str | None = Field(None, description="local: checkpoint path; openai: the served model's name.")
    base_url: str | None = Field(None, description="openai: e.g. http://127.0.0.1:8000/v1")
    api_key_env: str = Field("OPENAI_API_KEY", description="openai: name of the env var holding the key (not the key)")
    temperature: float = Field(0.1, ge=0, description="0 → greedy. The paper: 0.1.")
    max_new_tokens: int = Field(8, ge=1, le=256, description="One letter is asked for; the official code used 10.")
    batch_size: int = Field(8, ge=1, description="local: completions per generate call.")
    concurrency: int = Field(4, ge=1, description="openai: parallel requests.")
    timeout_s: float = Field(30.0, gt=0, description="openai: per-request timeout.")
    max_retries: int = Field(2, ge=0, description="openai: SDK retries (with backoff) before a call counts as failed.")
    device: str | None = Field(None, description="local: torch device for the judge; None keeps the loaded placement.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, name: str) -> str:
        if not _ENV_NAME_RE.match(name):
            raise ValueError(
                f"api_key_env must name an environment variable (not hold a key), got a {len(name)}-char value"
            )
        return name

    @model_validator(mode="after")
    def _check_backend(self) -> JudgeConfig:
        if self.backend == "local" and not self.model:
            raise ValueError("judge.backend 'local' needs judge.model (a checkpoint path)")
        if self.backend == "openai" and not (self.base_url and self.model):
            raise ValueError("judge.backend 'openai' needs judge.base_url and judge.model")
        return self


class RewardsConfig(BaseModel):
    """Configuration of the three rewards and their weight schedule (reference §5).

    ``schedule`` defaults to the paper's 7:3:0 → 3:7:0 → 1:7:2 at epochs 2 and 4 of 12, expressed as
    fractions 2/12, 4/12 and 1 of the run so a shorter run keeps the proportions; give ``until_epoch``
    stages to pin the paper's absolute epochs instead.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_partial_credit: float = Field(
        0.0, ge=0, le=1, description="0 = the paper's strict format reward; see make_format_reward."
    )
    accuracy_mode: AccuracyMode = Field(
        "answer_tag",
        description="answer_tag: letter from <answer> (saner); answer_text: that letter or one option's exact "
        "text (not in the paper; small LMs); official_scan: the official code's scan.",
    )
    schedule: RewardSchedule = Field(default_factory=RewardSchedule.paper)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    skip_judge_when_unweighted: bool = Field(
        True, description="Do not call the judge while the schedule gives consistency weight 0 (reward is None)."
    )

    @model_validator(mode="after")
    def _judge_if_weighted(self) -> RewardsConfig:
        if self.judge.backend == "none" and self.schedule.needs_consistency():
            raise ValueError(
                "the reward schedule gives the consistency reward a weight but judge.backend is 'none': "
                "choose a judge backend or set every stage's consistency weight to 0"
            )
        return self
