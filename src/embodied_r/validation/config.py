"""Thresholds of the perception data-quality suites.

Self-contained on purpose (no import of :mod:`embodied_r.config`): the pipeline fills a
:class:`ValidationConfig` from ``params.yaml`` — the key-frame bounds are the clamp bounds of
the key-frame stage — and hands it to :func:`embodied_r.validation.suites.run_suites`.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Case-insensitive regexes of a VLM refusing or failing to look at the images.
DEFAULT_REFUSAL_PATTERNS: tuple[str, ...] = (
    r"\bI[’']m sorry\b",
    r"\bI am sorry\b",
    r"\bI (cannot|can[’']t|am unable to|am not able to) (help|assist|comply)\b",
    r"\bas an AI\b",
    r"\bI (cannot|can[’']t|am unable to|am not able to|do not|don[’']t) (see|view|analy[sz]e|access|process) "
    r"(the |these |this |any )?(image|images|frame|frames|picture|pictures|video)\b",
    r"\bno (image|images|frames?) (was|were|has been|have been) (provided|attached|shared)\b",
)


class ValidationConfig(BaseModel):
    """What the perception outputs must satisfy to go on to reasoning and training.

    >>> ValidationConfig(min_keyframes=4, max_keyframes=32).max_unparsable_action_share
    0.2
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_keyframes: int = Field(
        4, ge=1, description="Fewest key frames a sample may have (the lower clamp bound of the key-frame stage)."
    )
    max_keyframes: int = Field(
        32, ge=1, description="Most key frames a sample may have (the upper clamp bound of the key-frame stage)."
    )
    max_unparsable_action_share: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description=(
            "Largest share, over ALL non-first frames of the batch, whose action could not be parsed "
            "(action is None). Overall rather than per sample: a 4-frame sample has 3 actions, so one "
            "miss is already 33% and a per-sample gate would block on VLM noise."
        ),
    )
    max_unparsable_action_share_per_sample: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description=(
            "Optional per-sample gate on the same share (e.g. 0.5; 0.99 catches only samples with no parsed "
            "action at all). None turns the per-sample expectation off."
        ),
    )
    min_description_chars: int = Field(
        20, ge=1, description="Fewest characters of a frame's observation (stripped), the text the LM reads."
    )
    max_description_chars: int = Field(
        4000, ge=1, description="Most characters of a frame's observation (stripped); longer means a runaway VLM."
    )
    refusal_patterns: tuple[str, ...] = Field(
        DEFAULT_REFUSAL_PATTERNS,
        description=(
            "Regexes (matched case-insensitively, anywhere) that mark a frame's raw VLM answer as a refusal "
            "or as a model that did not see the images."
        ),
    )
    max_failing_examples: int = Field(
        10, ge=0, description="Failing rows kept per expectation, identified by question_id (or scene)."
    )

    @field_validator("refusal_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"refusal pattern {pattern!r} is not a valid regex: {err}") from None
        return patterns

    @model_validator(mode="after")
    def _bounds_ordered(self) -> ValidationConfig:
        if self.min_keyframes > self.max_keyframes:
            raise ValueError(f"min_keyframes ({self.min_keyframes}) > max_keyframes ({self.max_keyframes})")
        if self.min_description_chars > self.max_description_chars:
            raise ValueError(
                f"min_description_chars ({self.min_description_chars}) > "
                f"max_description_chars ({self.max_description_chars})"
            )
        return self

    def refusal_regexes(self) -> list[str]:
        """The refusal patterns with an inline case-insensitive flag, as GX and ``re`` take them."""
        return [f"(?i){pattern}" for pattern in self.refusal_patterns]
