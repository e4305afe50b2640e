"""``evaluation_results`` on a tiny LM: provenance, plots, MLflow, and promotion in a real sqlite registry."""

import json

import mlflow
import pytest

from embodied_r.cli import main
from embodied_r.evaluation.metrics import TRUNCATION_WARN_RATE

MODELS = ["vlm_descriptions", "base_lm", "training_set", "warm_lm", "sft_lm", "grpo_lm", "evaluation_results"]


@pytest.mark.slow
def test_evaluation_results_and_promotion(tiny_pipeline):
    pipeline = tiny_pipeline(
        sft={"enabled": True},
        training_set={"categories": ["landmark_position", "action_generation", "obj_appearance_order"]},
        evaluation={"noise_study": {"perfect": {"miss_object_prob": 0.0, "wrong_color_prob": 0.0,
                                                "wrong_action_prob": 0.0}, "high": {"miss_object_prob": 0.5}}},
    )  # fmt: skip
    tiny_project = pipeline.root
    result = pipeline.materialize(MODELS)
    assert result.success

    out = tiny_project / "data" / "evaluation"
    results = json.loads((out / "results.json").read_text())
    test_rows = (tiny_project / "data" / "training_set" / "test.jsonl").read_text().splitlines()
    assert results["model"]["registry_version"] == "1"
    assert set(results["extra"]) >= {"models", "comparison", "noise_study", "generalisation", "promotion"}
    assert set(results["extra"]["models"]) == {"base", "warm-start", "grpo", "sft"}, "each model from its asset"
    comparison = results["extra"]["comparison"]
    assert comparison["reference"] == "warm-start", "GRPO is compared with where it started"
    # the gain's own interval, paired over the same questions, holds the gain (the difference of pooled accuracies)
    lo, hi = comparison["paired_delta_ci95"]
    assert comparison["paired_n"] == len(test_rows)
    assert comparison["paired_delta"] == pytest.approx(comparison["pooled_accuracy_delta"])
    assert lo <= comparison["paired_delta"] <= hi
    noise = results["extra"]["noise_study"]["results"]
    assert set(noise) == {f"{m}, {level} noise" for m in ("grpo", "sft") for level in ("perfect", "high")}
    assert all(agg["n"] > 0 for agg in noise.values())
    generalisation = results["extra"]["generalisation"]
    assert "landmark_position" not in generalisation["held_out_categories"]
    assert generalisation["held_out_categories"], "the tiny world has categories outside training_set.categories"
    for model in ("grpo", "sft"):
        parts = generalisation["results"][model]
        assert parts["in_distribution"]["n"] + parts["held_out_categories"]["n"] == len(test_rows)
    for label in ("base", "warm-start", "grpo", "sft", "grpo_perfect_noise"):
        per_sample = (out / "samples" / f"{label}.jsonl").read_text().splitlines()
        assert len(per_sample) == len(test_rows), label
    assert results["aggregate"]["n"] == len(test_rows)
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"base", "warm-start", "grpo", "sft", "grpo, perfect noise", "sft, high noise"} <= set(metrics)
    assert "grpo, held out categories" in metrics
    assert 0.0 <= metrics["grpo"]["pooled_accuracy"] <= 1.0
    # the letter prior depends on the test solutions only: the same for every model on the same rows
    assert 0.0 < metrics["grpo"]["constant_answer_accuracy"] == metrics["base"]["constant_answer_accuracy"] <= 1.0
    assert 0.0 <= metrics["grpo"]["top_answer_share"] <= 1.0
    for png in ("category_accuracy.png", "training_curves.png", "noise_study.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    meta = result.asset_materializations_for_node("evaluation_results")[0].metadata
    assert "pooled (Avg)" in meta["results"].value and "Perception-noise study" in meta["results"].value
    assert "Δ grpo − warm-start" in meta["results"].value
    assert meta["grpo_gain_over_warm_start"].value == pytest.approx(comparison["paired_delta"])
    assert "paired bootstrap" in meta["grpo_gain_ci95"].value
    assert meta["promoted"].value is True, "with no champion, the first passing candidate becomes champion"
    # Models whose completions the budget cut are named in a warning (the tiny random LM rarely stops in 8 tokens),
    # the noise-study reruns included.
    evaluated = ["base", "warm-start", "grpo", "sft", *noise]
    cut = [m for m in evaluated if metrics[m]["truncated_rate"] > TRUNCATION_WARN_RATE]
    if cut:
        assert [m for m in cut if f"- {m}: " in meta["warnings"].value] == cut
    else:
        assert "warnings" not in meta

    uri = f"sqlite:///{tiny_project}/mlruns/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    name = "embodied-r-lm"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    pointer = json.loads((tiny_project / "data" / "models" / "grpo_lm.json").read_text())
    assert client.get_metric_history(pointer["run_id"], "eval/grpo/pooled_accuracy")
    assert client.get_metric_history(pointer["run_id"], "eval/grpo_perfect_noise/pooled_accuracy")
    assert client.get_metric_history(pointer["run_id"], "eval/grpo/top_answer_share")
    gain = client.get_metric_history(pointer["run_id"], "eval/gain_over_reference")
    assert [m.value for m in gain] == [pytest.approx(comparison["paired_delta"])]
    assert client.get_metric_history(pointer["run_id"], "eval/gain_over_reference_ci95_high")[0].value == hi

    # A new version with the same weights is not better: the champion stays, and the decision is recorded.
    again = pipeline.materialize(["grpo_lm", "evaluation_results"])  # warm_lm / sft_lm unchanged: not rerun
    assert again.success
    meta = again.asset_materializations_for_node("evaluation_results")[0].metadata
    assert meta["promoted"].value is False
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert client.get_model_version(name, "2").tags["embodied_r.decision"] == "rejected"

    lo_1, hi_1 = json.loads(client.get_model_version(name, "1").tags["embodied_r.pooled_accuracy_ci95"])
    assert [lo_1, hi_1] == results["aggregate"]["pooled_accuracy_ci95"], "the interval `registry promote` shows"

    # By hand: promote v2 (no better than v1: it needs --force), then roll back to v1 (the CLI commands a user runs).
    assert main(["--root", str(tiny_project), "registry", "promote", "2", "--reason", "manual test"]) == 1
    assert main(["--root", str(tiny_project), "registry", "promote", "2", "--reason", "manual test", "--force"]) == 0
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"
    assert main(["--root", str(tiny_project), "registry", "rollback", "--reason", "back"]) == 0
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
