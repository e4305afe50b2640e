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


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the tiny offline LM and its tokenizer (built once per session; tests copy it to change it)."""
    from embodied_r.models.tiny import build_tiny_lm

    return build_tiny_lm(tmp_path_factory.mktemp("tiny_lm"))


@pytest.fixture
def tiny_params_dict() -> dict:
    """``params.yaml`` with the ``tiny`` profile (``profiles/tiny.yaml``) applied: the CI profile, one source."""
    from embodied_r.profiles import deep_merge, profile_changes

    data = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    data = deep_merge(data, profile_changes(PROJECT_ROOT, "tiny"))
    data["profile"] = "test"
    return data


@pytest.fixture
def tiny_project(tmp_path: Path, tiny_params_dict: dict) -> Path:
    """A project root with a tiny ``params.yaml``; outputs land under it."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params_dict, sort_keys=False))
    return tmp_path
