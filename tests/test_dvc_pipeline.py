"""A real DVC repo: ``dvc repro`` materializes through Dagster, and a second run does nothing."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


@pytest.fixture
def dvc_project(tmp_path: Path, tiny_params_dict: dict) -> tuple[Path, dict[str, str]]:
    dvc = shutil.which("dvc")
    assert dvc, "dvc is not on PATH: run the tests with `make test`, which installs it in .venv-dvc"
    for name in ("src", "orchestration"):
        shutil.copytree(PROJECT_ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT_ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params_dict, sort_keys=False))
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / ".dagster_home")}
    env.pop("EMBODIED_R_ROOT", None)
    _run(["git", "init", "-q"], tmp_path, env)
    _run([dvc, "init", "-q"], tmp_path, env)
    return tmp_path, env


@pytest.mark.slow
def test_dvc_repro_runs_dagster_and_second_repro_is_a_no_op(dvc_project):
    root, env = dvc_project
    first = _run(["dvc", "repro"], root, env)
    assert "Running stage 'raw_videos'" in first
    assert (root / "data" / "raw" / "records.jsonl").is_file()
    assert (root / ".dagster_home" / "dagster.yaml").is_file(), "the CLI creates the Dagster home when missing"
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert lock["stages"]["raw_videos"]["params"]["params.yaml"]["synthetic"]["seed"] == 7

    second = _run(["dvc", "repro"], root, env)
    assert "Running stage" not in second
    assert "didn't change" in second or "up to date" in second

    # A param of the stage changes: it reruns.
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["split"]["seed"] = 8
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert "Running stage 'raw_videos'" in _run(["dvc", "repro"], root, env)
