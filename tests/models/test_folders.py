"""Model folders in ``data/models/<stage>/`` (DVC outputs) and the hash DVC records for them."""

import json
import shutil
import subprocess

import pytest
import yaml

from embodied_r.layout import Layout
from embodied_r.models.folders import DISABLED_FILE, dvc_md5, install_disabled, install_model, model_folder
from tests.conftest import PROJECT_ROOT

DVC = PROJECT_ROOT / ".venv-dvc" / "bin" / "dvc"


@pytest.mark.slow
def test_dvc_md5_is_the_hash_dvc_records_for_the_folder(tmp_path, tiny_lm):
    """What MLflow tags a version with must be what ``dvc.lock`` says for the model folder: real DVC decides."""
    dvc = shutil.which("dvc") or (str(DVC) if DVC.exists() else None)
    assert dvc, "dvc is not installed: `make setup` installs it in .venv-dvc"
    folder = tmp_path / "repo" / "model"
    shutil.copytree(tiny_lm, folder)
    (folder / "sub").mkdir()
    (folder / "sub" / "notes.txt").write_bytes(b"line\r\nwith windows ending\n")  # DVC 3 hashes bytes as they are
    subprocess.run([dvc, "init", "-q", "--no-scm"], cwd=folder.parent, check=True)
    subprocess.run([dvc, "add", "-q", "model"], cwd=folder.parent, check=True, capture_output=True)
    recorded = yaml.safe_load((folder.parent / "model.dvc").read_text())["outs"][0]["md5"]
    assert dvc_md5(folder) == recorded
    (folder / "sub" / "notes.txt").write_text("changed")
    assert dvc_md5(folder) != recorded


def test_install_model_copies_the_folder_in_and_replaces_what_was_there(tmp_path, tiny_lm):
    layout = Layout(root=tmp_path)
    target = install_model(tiny_lm, layout, "warm_lm")
    assert target == tmp_path / "data" / "models" / "warm_lm"
    assert dvc_md5(target) == dvc_md5(tiny_lm)
    assert not target.is_symlink() and not (target / "config.json").is_symlink()
    install_disabled(layout, "warm_lm", "cold_start.enabled is false")
    assert [p.name for p in target.iterdir()] == [DISABLED_FILE]
    assert json.loads((target / DISABLED_FILE).read_text()) == {
        "enabled": False,
        "reason": "cold_start.enabled is false",
    }
    install_model(tiny_lm, layout, "warm_lm")
    assert dvc_md5(target) == dvc_md5(tiny_lm), "the disabled marker is gone"
    assert sorted(p.name for p in target.parent.iterdir()) == ["warm_lm"], "no staging folder left behind"


def test_install_model_refuses_a_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        install_model(tmp_path, Layout(root=tmp_path), "grpo_lm")
    with pytest.raises(ValueError, match="unknown model stage"):
        model_folder(Layout(root=tmp_path), "final")
