"""The evaluation promotes the registry version of the GRPO model folder it scores: found by the folder's DVC hash,
or registered when DVC restored the folder without its training running against this MLflow store (a run-cache
restore, ``dvc pull`` on a second machine). Real sqlite MLflow stores, real model folders."""

from __future__ import annotations

import shutil
import subprocess

import mlflow
import pytest

from embodied_r.config import load_params
from embodied_r.evaluation.stage import find_or_register_grpo
from embodied_r.layout import Layout
from embodied_r.models.folders import dvc_md5, install_model
from embodied_r.models.pointers import GRPO_POINTER, read_pointer, write_pointer
from embodied_r.models.registry import GIT_COMMIT_TAG, GIT_DIRTY_TAG, MODEL_MD5_TAG, MODEL_PATH_TAG, REGISTERED_BY_TAG
from embodied_r.tracking import configure_tracking, create_run
from embodied_r.training.stage import register_grpo_model


@pytest.fixture
def trained(tiny_project, tiny_lm, monkeypatch):
    """A project whose grpo_lm output is there (data/models/grpo_lm + its pointer), in a git repo, MLflow empty."""
    for key in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(key, raising=False)
    git = ["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost"]
    subprocess.run(["git", "init", "-q"], cwd=tiny_project, check=True)
    subprocess.run([*git, "add", "params.yaml"], cwd=tiny_project, check=True)
    subprocess.run([*git, "commit", "-qm", "params"], cwd=tiny_project, check=True)
    params = load_params(tiny_project / "params.yaml")
    layout = Layout(root=tiny_project, data_dir=params.data_dir)
    install_model(tiny_lm, layout, "grpo_lm")
    pointer = {"path": "data/models/grpo_lm", "run_id": "elsewhere", "version": "1", "training_key": "k"}
    write_pointer(layout.models, GRPO_POINTER, pointer)
    configure_tracking(params.tracking, layout.root)
    yield params, layout
    mlflow.set_tracking_uri(None)


def _versions(params) -> list:
    return mlflow.MlflowClient().search_model_versions(f"name='{params.tracking.registered_model}'")


@pytest.mark.slow
def test_a_registry_without_the_model_gets_it_registered_once_then_finds_it(trained):
    params, layout = trained
    pointer = read_pointer(layout.models, GRPO_POINTER)
    md5 = dvc_md5(layout.models / "grpo_lm")

    first = find_or_register_grpo(params, layout, pointer)
    assert first.registered_here and first.version == "1" and first.model_md5 == md5
    assert "registered v1 from the model folder" in first.how
    (version,) = _versions(params)
    tags = dict(version.tags)
    assert tags[MODEL_MD5_TAG] == md5 and tags[MODEL_PATH_TAG] == "data/models/grpo_lm"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=layout.root, capture_output=True, text=True).stdout
    assert tags[GIT_COMMIT_TAG] == head.strip() and tags[GIT_DIRTY_TAG] == "false"
    assert tags[REGISTERED_BY_TAG] == "evaluation_results"
    run = mlflow.MlflowClient().get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["embodied_r.trained_in_run"] == "elsewhere"

    again = find_or_register_grpo(params, layout, pointer)
    assert not again.registered_here and again.version == "1" and again.run_id == first.run_id
    assert len(_versions(params)) == 1, "found by its hash: no duplicate version"


@pytest.mark.slow
def test_the_version_the_training_registered_is_found_and_another_model_is_not_taken_for_it(trained, tiny_lm):
    params, layout = trained
    run_id, _ = create_run(params.tracking, layout.root, "grpo", {"embodied_r.stage": "grpo_lm"}, {})
    _, version = register_grpo_model(params, layout, run_id, registered_by="grpo_lm")
    pointer = {**read_pointer(layout.models, GRPO_POINTER), "version": version, "run_id": run_id}
    found = find_or_register_grpo(params, layout, pointer)
    assert (found.registered_here, found.version, found.run_id) == (False, version, run_id)

    # DVC restores another GRPO model into the folder (another training's outputs, from the run cache).
    other = layout.root / "other"
    shutil.copytree(tiny_lm, other)
    (other / "generation_config.json").write_text('{"note": "another model"}')
    install_model(other, layout, "grpo_lm")
    restored = find_or_register_grpo(params, layout, pointer)
    assert restored.registered_here and restored.version == "2", "a model with another hash is registered anew"
    assert restored.model_md5 == dvc_md5(layout.models / "grpo_lm") != found.model_md5
