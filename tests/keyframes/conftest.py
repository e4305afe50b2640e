"""Synthetic videos with known camera motion, written once per test session (320x240, mp4v)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embodied_r.keyframes.synthetic import pan, random_texture, static, write_video


@pytest.fixture(scope="session")
def texture() -> np.ndarray:
    return random_texture(2400, 1600, seed=0)


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory, texture: np.ndarray) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    specs = {
        "static": (static(1200, 800), 300, 30.0),
        "slow_pan": (pan(1.5, cx=300, cy=800), 450, 30.0),
        "fast_pan": (pan(6.0, cx=300, cy=800), 300, 30.0),
        "rotate": (pan(0.5, cx=600, cy=800, angle_per_frame=0.6), 450, 30.0),
        "ntsc": (pan(2.0, cx=300, cy=800), 330, 30000 / 1001),
    }
    return {
        name: write_video(root / f"{name}.mp4", motion, frames=n, fps=fps, texture=texture)
        for name, (motion, n, fps) in specs.items()
    }
