"""``warm_lm`` and ``sft_lm`` on a tiny LM: real TRL SFT steps, MLflow runs, pass-through when switched off."""

import json

import mlflow
import pytest

UPSTREAM = ["vlm_descriptions", "base_lm", "training_set"]


@pytest.mark.slow
def test_cold_start_trains_once_and_sft_can_be_off(tiny_pipeline):
    pipeline = tiny_pipeline(sft={"enabled": False})
    result = pipeline.materialize([*UPSTREAM, "warm_lm", "sft_lm"])
    assert result.success
    root = pipeline.root
    warm = json.loads((root / "data" / "models" / "warm_lm.json").read_text())
    assert warm["enabled"] and warm["path"].endswith("final") and ".cache/cold_start/" in warm["path"]
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
    assert sft["enabled"] and ".cache/sft/" in sft["path"]
    record = json.loads((pipeline.root / sft["path"] / "supervised_training.json").read_text())
    assert record["purpose"] == "sft" and record["examples"] > 0
