"""MLflow bookkeeping of a resumed training, on a real sqlite store (issue 36, item 11)."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import pytest

from embodied_r.tracking import RESUME_STEP_TAG, RESUMED_BY_TAG, RESUMES_RUN_TAG, adopt_orphan_runs

TAGS = {"embodied_r.stage": "grpo_lm", "embodied_r.training_key": "abc123"}


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for key in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(key, raising=False)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    yield mlflow.MlflowClient()
    mlflow.set_tracking_uri(None)


def curve(client: mlflow.MlflowClient, run_id: str, key: str = "reward") -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


def test_a_killed_runs_orphan_is_closed_linked_and_its_curve_continued(client, tmp_path, caplog) -> None:
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "a").as_uri())
    finished = client.create_run(experiment, tags=TAGS).info.run_id
    client.set_terminated(finished)
    other_key = client.create_run(experiment, tags={**TAGS, "embodied_r.training_key": "zzz"}).info.run_id
    orphan = client.create_run(experiment, tags={**TAGS, "dagster.run_id": "d1"}).info.run_id
    for step in range(1, 6):  # killed after step 5; its last complete checkpoint is step 3
        client.log_metric(orphan, "reward", step / 10, step=step)
        client.log_metric(orphan, "kl", step / 100, step=step)
    resumed = client.create_run(experiment, tags=TAGS).info.run_id

    with caplog.at_level(logging.WARNING):
        orphans = adopt_orphan_runs(resumed, TAGS, resume_step=3)

    assert [(o["run_id"], o["dagster.run_id"]) for o in orphans] == [(orphan, "d1")]
    assert client.get_run(orphan).info.status == "KILLED"
    assert client.get_run(orphan).data.tags[RESUMED_BY_TAG] == resumed
    tags = client.get_run(resumed).data.tags
    assert tags[RESUMES_RUN_TAG] == orphan and tags[RESUME_STEP_TAG] == "3"
    # Steps 1-3 come from the killed attempt; 4 and 5 were lost with it and are the resumed run's to log.
    assert curve(client, resumed) == {1: 0.1, 2: 0.2, 3: 0.3}
    assert curve(client, resumed, "kl") == {1: 0.01, 2: 0.02, 3: 0.03}
    assert f"MLflow run {orphan} was left RUNNING by a killed training: marked KILLED" in caplog.text
    # Runs of other trainings and finished runs are left alone; a second call finds nothing.
    assert client.get_run(other_key).info.status == "RUNNING" and client.get_run(finished).info.status == "FINISHED"
    assert adopt_orphan_runs(resumed, TAGS, resume_step=3) == []
    assert curve(client, resumed) == {1: 0.1, 2: 0.2, 3: 0.3}, "nothing copied twice"
