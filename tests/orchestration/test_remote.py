"""The DVC remote is a setting: params.yaml's ``storage`` section, applied to ``.dvc/config`` by ``embodied-r remote``
(what ``make setup`` runs), with real DVC."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from embodied_r.config import ParamsError, StorageConfig, parse_params
from orchestration.cli import dvc_remote_argvs, main
from tests.conftest import PROJECT_ROOT


def _dvc() -> str:
    dvc = shutil.which("dvc") or shutil.which("dvc", path=str(PROJECT_ROOT / ".venv-dvc" / "bin"))
    assert dvc, "dvc is not installed: `make setup` installs it in .venv-dvc"
    return dvc


def _dvc_config(root: Path) -> dict[str, str]:
    out = subprocess.run([_dvc(), "config", "--list"], cwd=root, capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _project(tmp_path: Path, storage: dict | None) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    if storage is not None:
        params["storage"] = storage
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run([_dvc(), "init", "-q", "--no-scm"], cwd=root, check=True)
    return root


def test_the_default_storage_is_the_local_folder_it_always_was(tmp_path, capsys):
    root = _project(tmp_path, None)
    assert main(["--root", str(root), "remote"]) == 0
    config = _dvc_config(root)
    assert config["core.remote"] == "local" and config["remote.local.url"] == str(root / ".dvc-storage")
    assert "url = ../.dvc-storage" in (root / ".dvc" / "config").read_text(), "relative: the same in every clone"
    assert "DVC remote 'local' (default): .dvc-storage" in capsys.readouterr().out


def test_another_remote_is_a_params_change_and_the_section_is_the_whole_truth(tmp_path, capsys):
    shared = tmp_path / "shared"
    root = _project(tmp_path, {"remote": "team", "url": str(shared), "options": {"verify": True}})
    assert main(["--root", str(root), "remote"]) == 0
    config = _dvc_config(root)
    assert config["core.remote"] == "team" and config["remote.team.url"] == str(shared)
    assert config["remote.team.verify"] == "true"

    # The section changes again: the option it no longer names is gone, the URL is the new one.
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["storage"] = {"remote": "team", "url": "s3://bucket/embodied-r", "options": {"region": "eu-west-1"}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    capsys.readouterr()
    assert main(["--root", str(root), "remote"]) == 0
    config = _dvc_config(root)
    assert config["remote.team.url"] == "s3://bucket/embodied-r" and config["remote.team.region"] == "eu-west-1"
    assert "remote.team.verify" not in config
    out = capsys.readouterr().out
    assert 'pip install "dvc[s3]"' in out and "dvc remote modify --local team <key> <value>" in out


def test_credentials_are_refused_in_params_with_the_command_that_keeps_them_local():
    with pytest.raises(ParamsError) as caught:
        parse_params({"storage": {"url": "s3://b/p", "options": {"secret_access_key": "abc", "region": "x"}}})
    message = str(caught.value)
    assert "storage.options: secret_access_key is a credential" in message
    assert "dvc remote modify --local <remote> secret_access_key <value>" in message and "abc" not in message


def test_the_remote_commands_replace_the_remote_then_set_each_option():
    storage = StorageConfig(remote="r", url="ssh://me@host/srv/dvc", options={"port": 2222, "allow_agent": False})
    assert dvc_remote_argvs(storage) == [
        ["remote", "add", "--default", "--force", "r", "ssh://me@host/srv/dvc"],
        ["remote", "modify", "r", "allow_agent", "false"],
        ["remote", "modify", "r", "port", "2222"],
    ]


def test_outside_a_dvc_repository_the_command_says_what_to_run(tmp_path, capsys):
    (tmp_path / "params.yaml").write_text((PROJECT_ROOT / "params.yaml").read_text())
    assert main(["--root", str(tmp_path), "remote"]) == 1
    assert "is not a DVC repository: run `dvc init` there (or `make setup`)" in capsys.readouterr().err
