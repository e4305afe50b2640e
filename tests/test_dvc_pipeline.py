"""A real DVC repo: ``dvc repro`` materializes through Dagster and reruns exactly what changed."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT
from tests.training.conftest import build_tiny_lm


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture
def dvc_project(tmp_path: Path, tiny_params_dict: dict) -> tuple[Path, dict[str, str]]:
    dvc = shutil.which("dvc")
    assert dvc, "dvc is not on PATH: run the tests with `make test`, which installs it in .venv-dvc"
    root = tmp_path / "project"
    for name in ("src", "orchestration"):
        shutil.copytree(PROJECT_ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT_ROOT / "dvc.yaml", root / "dvc.yaml")
    tiny_params_dict["lm"]["base"] = str(build_tiny_lm(tmp_path / "tiny_lm"))
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params_dict, sort_keys=False))
    env = {**os.environ, "DAGSTER_HOME": str(root / ".dagster_home")}
    env.pop("EMBODIED_R_ROOT", None)
    _run(["git", "init", "-q"], root, env)
    _run([dvc, "init", "-q"], root, env)
    return root, env


@pytest.mark.slow
def test_dvc_repro_runs_every_stage_once_then_only_what_changed(dvc_project):
    root, env = dvc_project
    first = _run(["dvc", "repro"], root, env)
    stages = set(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])
    assert _stages_run(first) == stages
    assert (root / "data" / "training_set" / "train.jsonl").is_file()
    assert (root / ".dagster_home" / "dagster.yaml").is_file(), "the CLI creates the Dagster home when missing"
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert lock["stages"]["raw_videos"]["params"]["params.yaml"]["synthetic"]["seed"] == 7

    second = _run(["dvc", "repro"], root, env)
    assert _stages_run(second) == set(), "a second repro must be a no-op"

    # A perception param changes: perception and what follows rerun; data, key frames and the base LM do not.
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["perception"]["miss_object_prob"] = 0.0
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = _stages_run(_run(["dvc", "repro"], root, env))
    assert "vlm_descriptions" in third
    assert not third & {"raw_videos", "keyframes", "base_lm"}
