"""Fixtures of the data-quality suite tests: one GX context for the whole session."""

from __future__ import annotations

import os

os.environ["GX_ANALYTICS_ENABLED"] = "False"

import pytest

from embodied_r.validation import PerceptionValidator, ValidationConfig


@pytest.fixture(scope="session")
def validation_config() -> ValidationConfig:
    """The default thresholds, with the paper's key-frame clamp bounds."""
    return ValidationConfig(min_keyframes=4, max_keyframes=32)


@pytest.fixture(scope="session")
def validator(validation_config: ValidationConfig) -> PerceptionValidator:
    """One GX context shared by the whole test session."""
    return PerceptionValidator(validation_config)
