"""Shared tiny configurations for the synthetic-world tests."""

from __future__ import annotations

import pytest

from embodied_r.config import SyntheticConfig
from embodied_r.data.synthetic import build_ground_truths
from embodied_r.data.synthetic.questions import generate_questions


@pytest.fixture(scope="session")
def many_gts():
    """Ground truths of 60 small videos (no rendering)."""
    cfg = SyntheticConfig(seed=3, scenes=30, videos_per_scene=2, width=64, height=48)
    return build_ground_truths(cfg)


@pytest.fixture(scope="session")
def many_questions(many_gts):
    """Questions for ``many_gts``: a few hundred records."""
    return generate_questions(many_gts, SyntheticConfig().categories, 8, seed=3)
