"""A lineage shared between machines through DVC (issue 37): every model is a DVC output, pushed to the remote the
``storage`` params name; a second clone pulls and evaluates without training anything.

The slow test runs the tiny profile through real DVC (the helpers of ``tests/test_end_to_end.py``), pushes to a
shared-folder remote, clones the git repo into a second folder with its own MLflow store and Dagster instance, and
reads from that instance's event log and that store that only the evaluation ran there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from embodied_r.models.folders import MODEL_STAGES, dvc_md5
from tests.conftest import PROJECT_ROOT
from tests.test_end_to_end import _run, _stages_run, dvc_project  # noqa: F401 (dvc_project: a fixture)

DVC_YAML = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
TRAINING_STAGES = {"cold_start", "sft", "grpo_lm"}  # the embodied_r.stage tags of the training runs
#: The lineage: evaluation_results and every stage upstream of it (what `dvc repro evaluation_results` runs).
LINEAGE = ["raw_videos", "keyframes", "vlm_descriptions", "base_lm", "training_set", "warm_lm", "sft_lm", "grpo_lm",
           "evaluation_results"]  # fmt: skip


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_every_model_folder_is_a_dvc_output_and_an_input_of_the_stages_that_read_it():
    """dvc.yaml must name the model folders, or `dvc push` leaves the models behind and a deleted one goes unseen."""
    readers = {
        "training_set": {"base_lm"},
        "warm_lm": {"base_lm"},
        "sft_lm": {"base_lm"},
        "grpo_lm": {"base_lm", "warm_lm"},
        "evaluation_results": set(MODEL_STAGES),
    }
    for stage in MODEL_STAGES:
        outs = DVC_YAML[stage]["outs"]
        assert f"${{data_dir}}/models/{stage}" in outs and f"${{data_dir}}/models/{stage}.json" in outs, stage
    for stage, models in readers.items():
        deps = set(DVC_YAML[stage]["deps"])
        assert {f"${{data_dir}}/models/{m}" for m in models} <= deps, stage


@pytest.mark.slow
def test_a_second_clone_pulls_the_lineage_and_evaluates_without_training(dvc_project, tmp_path):  # noqa: F811
    root, env = dvc_project
    shared = tmp_path / "shared-remote"  # a shared folder: an NFS mount, a synced drive
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["storage"] = {"remote": "team", "url": str(shared), "options": {}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["embodied-r", "remote"], root, env)  # what `make setup` runs: the remote is a setting

    started = time.monotonic()
    # The whole dvc.yaml, as `make demo` runs it (predictions answers the empty inbox: nothing).
    assert _stages_run(_run(["dvc", "repro"], root, env)) == {*LINEAGE, "predictions"}
    full_run_s = time.monotonic() - started

    # Deleting a model's files: DVC says so (the models are outputs, not only pointers).
    shutil.move(root / "data" / "models" / "grpo_lm", tmp_path / "grpo_lm aside")
    status = _run(["dvc", "status", *LINEAGE], root, env)
    assert "data/models/grpo_lm" in status and "deleted" in status, status
    shutil.move(tmp_path / "grpo_lm aside", root / "data" / "models" / "grpo_lm")
    assert "Data and pipelines are up to date" in _run(["dvc", "status", *LINEAGE], root, env)

    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    lock_md5 = {o["path"]: o["md5"] for o in lock["grpo_lm"]["outs"]}["data/models/grpo_lm"]
    git = ["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost"]
    _run([*git, "add", "-A"], root, env)
    _run([*git, "commit", "-qm", "lineage"], root, env)
    _run(["dvc", "push"], root, env)
    pushed = _size(shared)
    first_store = f"sqlite:///{root}/mlruns/mlflow.db"

    # The second machine: a git clone, its own MLflow store and Dagster instance, and no model cache at all.
    shutil.rmtree(tmp_path / "models")  # lm.cache_dir of the tiny profile's first machine
    clone = tmp_path / "second machine"
    _run(["git", "clone", "-q", str(root), str(clone)], tmp_path, env)
    env2 = {**env, "DAGSTER_HOME": str(clone / ".dagster_home")}
    started = time.monotonic()
    _run(["dvc", "pull"], clone, env2)  # the whole lineage, the (empty) predictions included
    pull_s = time.monotonic() - started
    assert "Data and pipelines are up to date" in _run(["dvc", "status"], clone, env2)
    for stage in MODEL_STAGES:
        assert dvc_md5(clone / "data" / "models" / stage) == dvc_md5(root / "data" / "models" / stage), stage
    started = time.monotonic()
    _run(["embodied-r", "materialize", "evaluation_results"], clone, env2)
    evaluate_s = time.monotonic() - started

    # From the second clone's Dagster event log: one run, whose only step and materialization is the evaluation.
    import dagster as dg
    import mlflow

    instance = dg.DagsterInstance.from_config(str(clone / ".dagster_home"))
    (run,) = instance.get_runs()
    events = [e.dagster_event for e in instance.all_logs(run.run_id) if e.is_dagster_event]
    assert {e.step_key for e in events if e.event_type_value == "STEP_START"} == {"evaluation_results"}
    materialized = {e.asset_key.to_user_string() for e in events if e.event_type_value == "ASSET_MATERIALIZATION"}
    assert materialized == {"evaluation_results"}
    instance.dispose()

    # From its MLflow store: no training run; the pulled GRPO model registered once, from its folder, with the
    # hash dvc.lock records for it and the commit the lineage was committed at.
    uri = f"sqlite:///{clone}/mlruns/mlflow.db"
    assert uri != first_store
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    stages = {r.data.tags.get("embodied_r.stage") for r in runs}
    assert not stages & TRAINING_STAGES and stages == {"grpo_lm_registration"}, stages
    (version,) = client.search_model_versions("name='embodied-r-lm'")
    assert version.tags["embodied_r.model_md5"] == lock_md5 and version.tags["embodied_r.registered_by"] == (
        "evaluation_results"
    )
    assert version.tags["embodied_r.model_path"] == "data/models/grpo_lm"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True).stdout.strip()
    assert version.tags["git.commit"] == head
    results = json.loads((clone / "data" / "evaluation" / "results.json").read_text())
    assert results["extra"]["registry"]["registered_by_evaluation"] is True
    assert results["extra"]["promotion"]["promoted"] is True, "the second store's first champion"
    assert not any((clone / ".cache" / stage).exists() for stage in ("grpo", "cold_start", "sft")), "nothing trained"

    models = {stage: _size(root / "data" / "models" / stage) for stage in MODEL_STAGES}
    figures = {"full_repro_s": round(full_run_s, 1), "pull_s": round(pull_s, 1), "evaluate_s": round(evaluate_s, 1),
               "pushed_bytes": pushed, "models_bytes": models}  # fmt: skip
    print(f"SHARE-FIGURES {json.dumps(figures)}")
