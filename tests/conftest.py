"""Shared fixtures. Nothing here may reach a model hub or the network."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["GX_ANALYTICS_ENABLED"] = "False"
os.environ["DO_NOT_TRACK"] = "1"

from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]

#: The smallest embedded world that still has every category and every split. (decord2 3.4 mis-decodes
#: mp4v at a few small widths such as 96 and 144 px, so the tiny world is 128 px wide.)
TINY_SYNTHETIC = {
    "seed": 7,
    "scenes": 3,
    "videos_per_scene": 1,
    "questions_per_video": 8,
    "width": 128,
    "height": 96,
    "fps": 5.0,
    "steps_per_video": 5,
    "frames_per_step": 4,
    "objects_per_scene": [4, 5],
}


@pytest.fixture
def tiny_params_dict() -> dict:
    """``params.yaml`` of the project with a tiny embedded world."""
    data = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    data["profile"] = "test"
    data["synthetic"].update(TINY_SYNTHETIC)
    data["split"]["ratios"] = [0.34, 0.33, 0.33]
    data["grpo"].update({"num_generations": 2, "max_completion_length": 8, "max_steps": 2, "save_steps": 1})
    data["evaluation"].update({"max_new_tokens": 8, "bootstrap_samples": 200})
    return data


@pytest.fixture
def tiny_project(tmp_path: Path, tiny_params_dict: dict, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project root with a tiny ``params.yaml``; outputs land under it."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params_dict, sort_keys=False))
    monkeypatch.setenv("EMBODIED_R_ROOT", str(tmp_path))
    return tmp_path
