"""``evaluation_results`` on a tiny LM: provenance, plots, MLflow, and promotion in a real sqlite registry."""

import json

import mlflow
import pytest

from embodied_r.cli import main


@pytest.mark.slow
def test_evaluation_results_and_promotion(tiny_pipeline):
    pipeline = tiny_pipeline()
    tiny_project = pipeline.root
    result = pipeline.materialize(["vlm_descriptions", "base_lm", "training_set", "grpo_lm", "evaluation_results"])
    assert result.success

    out = tiny_project / "data" / "evaluation"
    results = json.loads((out / "results.json").read_text())
    test_rows = (tiny_project / "data" / "training_set" / "test.jsonl").read_text().splitlines()
    assert results["model"]["registry_version"] == "1"
    assert set(results["extra"]) >= {"base", "comparison", "perfect_perception", "promotion"}
    assert results["extra"]["perfect_perception"]["n"] > 0, "zero-noise perception is evaluated too"
    per_sample = (out / "samples" / "trained.jsonl").read_text().splitlines()
    assert len(per_sample) == len(test_rows) == results["aggregate"]["n"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"base", "trained", "trained, perfect perception"}
    assert 0.0 <= metrics["trained"]["pooled_accuracy"] <= 1.0
    for png in ("category_accuracy.png", "training_curves.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    meta = result.asset_materializations_for_node("evaluation_results")[0].metadata
    assert "| pooled" in meta["results"].value or "pooled" in meta["results"].value.lower()
    assert meta["promoted"].value is True, "with no champion, the first passing candidate becomes champion"

    uri = f"sqlite:///{tiny_project}/mlruns/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    name = "embodied-r-lm"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    pointer = json.loads((tiny_project / "data" / "models" / "grpo_lm.json").read_text())
    assert client.get_metric_history(pointer["run_id"], "eval/trained/pooled_accuracy")

    # A new version with the same weights is not better: the champion stays, and the decision is recorded.
    again = pipeline.materialize(["grpo_lm", "evaluation_results"])
    assert again.success
    meta = again.asset_materializations_for_node("evaluation_results")[0].metadata
    assert meta["promoted"].value is False
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert client.get_model_version(name, "2").tags["embodied_r.decision"] == "rejected"

    # By hand: promote v2, then roll back to v1 (the CLI commands a user runs).
    assert main(["--root", str(tiny_project), "registry", "promote", "2", "--reason", "manual test"]) == 0
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"
    assert main(["--root", str(tiny_project), "registry", "rollback", "--reason", "back"]) == 0
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
