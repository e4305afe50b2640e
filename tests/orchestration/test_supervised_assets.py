"""``warm_lm`` and ``sft_lm`` on a tiny LM: real TRL SFT steps, MLflow runs, pass-through when switched off."""

import json
import logging
import socket

import mlflow
import pytest

from tests.orchestration.test_grpo_asset import KilledMaterialization

UPSTREAM = ["vlm_descriptions", "base_lm", "training_set"]


@pytest.mark.slow
def test_cold_start_trains_once_and_sft_can_be_off(tiny_pipeline):
    pipeline = tiny_pipeline(sft={"enabled": False})
    result = pipeline.materialize([*UPSTREAM, "warm_lm", "sft_lm"])
    assert result.success
    root = pipeline.root
    warm = json.loads((root / "data" / "models" / "warm_lm.json").read_text())
    assert warm["enabled"] and warm["path"] == "data/models/warm_lm"  # a DVC output; checkpoints stay in .cache/
    assert (root / warm["path"] / "model.safetensors").is_file()
    assert (root / ".cache" / "cold_start" / warm["key"] / "final").is_dir()
    meta = result.asset_materializations_for_node("warm_lm")[0].metadata
    assert meta["steps"].value == 2 and meta["reused"].value is False
    assert 0.0 <= meta["val_format_compliance"].value <= 1.0
    shares = meta["val_answer_shares"].value  # the letters the model gives on validation questions
    assert shares and sum(shares.values()) == pytest.approx(1.0)
    uri = f"sqlite:///{root}/mlruns/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(warm["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["embodied_r.stage"] == "cold_start"
    assert len(client.get_metric_history(warm["run_id"], "cold_start/loss")) == 2
    assert json.loads((root / "data" / "models" / "sft_lm.json").read_text()) == {"enabled": False, "path": None}

    # Unchanged data and settings: the trained model is reused, not trained again.
    again = pipeline.materialize(["warm_lm"])
    assert again.asset_materializations_for_node("warm_lm")[0].metadata["reused"].value is True
    assert json.loads((root / "data" / "models" / "warm_lm.json").read_text()) == warm, "same pointer, same run"
    assert len(client.search_runs([run.info.experiment_id], "tags.`embodied_r.stage` = 'cold_start'")) == 1


@pytest.mark.slow
def test_paper_recipe_passes_the_base_lm_through_and_sft_trains_on_traces(tiny_pipeline):
    pipeline = tiny_pipeline(cold_start={"enabled": False}, sft={"enabled": True})
    assert pipeline.materialize([*UPSTREAM, "warm_lm", "sft_lm"]).success
    models = pipeline.root / "data" / "models"
    base = json.loads((models / "base_lm.json").read_text())["path"]
    assert json.loads((models / "warm_lm.json").read_text()) == {"enabled": False, "path": base, "base": base}
    sft = json.loads((models / "sft_lm.json").read_text())
    assert sft["enabled"] and sft["path"] == "data/models/sft_lm" and base == "data/models/base_lm"
    record = json.loads((pipeline.root / sft["path"] / "supervised_training.json").read_text())
    assert record["purpose"] == "sft" and record["examples"] > 0


@pytest.mark.slow
def test_a_killed_cold_start_is_refused_then_resumed_closed_and_continued(tiny_project, tiny_lm, tmp_path, caplog):
    """The supervised stages share GRPO's writer lock, resume and run adoption: a real SIGKILL during ``warm_lm``."""
    import dagster as dg

    cold_start = {
        "enabled": True,
        "max_steps": 3,
        "save_steps": 1,
        "batch_size": 4,
        "micro_batch_size": 2,
        "answer": "letter",
    }
    run = KilledMaterialization(tiny_project, tiny_lm, tmp_path, "warm_lm", 2, cold_start=cold_start)
    pid = run.proc.pid
    try:
        run.start(["base_lm"])
        assert f"locked by cold_start training (pid {pid} on host {socket.gethostname()}" in run.refusal()
    finally:
        killed_run = run.kill()
    key = next((tiny_project / ".cache" / "cold_start").iterdir())
    assert {p.name for p in key.glob("checkpoint-*")} == {"checkpoint-1", "checkpoint-2"}, "kept until marked"

    with caplog.at_level(logging.WARNING):
        again = run.materialize(["warm_lm"])
    meta = again.asset_materializations_for_node("warm_lm")[0].metadata
    assert meta["resumed_from"].value.endswith("checkpoint-1") and meta["steps"].value == 3
    assert "skipped checkpoint-2 (no completion marker" in caplog.text and f"(pid {pid} on host" in caplog.text

    warm = json.loads((run.layout.models / "warm_lm.json").read_text())
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tiny_project}/mlruns/mlflow.db")
    resumed = client.get_run(warm["run_id"])
    orphan = client.get_run(resumed.data.tags["embodied_r.resumes_run"])
    assert orphan.info.status == "KILLED" and orphan.data.tags["dagster.run_id"] == killed_run.run_id
    assert orphan.data.tags["embodied_r.resumed_by"] == warm["run_id"] and resumed.info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(warm["run_id"], "cold_start/loss")) == [1, 2, 3]
    assert run.instance.get_run_by_id(killed_run.run_id).status == dg.DagsterRunStatus.FAILURE
