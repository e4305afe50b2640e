"""``evaluation_results``: base vs trained LM on the test split, plots, and gated promotion."""

import json

import dagster as dg

from embodied_r.data.records import write_json
from embodied_r.evaluation.generate import compare, evaluate_model
from embodied_r.evaluation.plots import category_accuracy_png, training_curves_png
from embodied_r.evaluation.promotion import promote_if_better
from embodied_r.evaluation.report import build_results, markdown_table, sha256_file, write_per_sample, write_results
from embodied_r.evaluation.stage import perfect_perception_test_rows
from embodied_r.rewards import build_judge
from embodied_r.training.dataset import read_training_rows
from orchestration.assets.grpo import grpo_lm, read_grpo_pointer
from orchestration.assets.training import base_lm, read_base_lm_path, training_set
from orchestration.checks import CHECKS_FILE
from orchestration.media import image_markdown
from orchestration.resources import MlflowResource, ProjectResource


def _metrics_row(aggregate: dict) -> dict:
    keys = ("pooled_accuracy", "category_mean_accuracy", "format_compliance", "answer_rate", "mean_completion_tokens")
    row = {k: aggregate.get(k) for k in keys}
    row["pooled_accuracy_ci95"] = aggregate.get("pooled_accuracy_ci95")
    row["consistency_rate"] = aggregate.get("consistency_rate")
    row["per_category"] = {c: v["accuracy"] for c, v in aggregate.get("per_category", {}).items()}
    return row


@dg.asset(group_name="evaluation", kinds={"pytorch", "mlflow"}, deps=[grpo_lm, base_lm, training_set])
def evaluation_results(
    context: dg.AssetExecutionContext, project: ProjectResource, mlflow: MlflowResource
) -> dg.MaterializeResult:
    """Greedy, batched decoding of the test split by the base LM and the GRPO-trained LM (both from their
    upstream assets), pooled and per-category accuracy with 95% bootstrap intervals, format compliance,
    think–answer consistency, completion length; plots; and the ``champion`` alias moved only when the trained
    model beats the current champion on the same test set by ``evaluation.promotion_margin``."""
    import mlflow as mlflow_lib

    params = project.load_params()
    layout = project.layout(params)
    ev = params.evaluation
    out = layout.evaluation
    out.mkdir(parents=True, exist_ok=True)
    test_path = layout.training_set / "test.jsonl"
    rows = read_training_rows(test_path)
    if not rows:
        raise dg.Failure(description=f"{test_path} has no rows: nothing to evaluate")
    base_path = read_base_lm_path(layout.models)
    trained = read_grpo_pointer(layout.models)
    judge = build_judge(params.rewards.judge, policy_model_path=str(base_path)) if ev.judge_consistency else None
    settings = {
        "max_new_tokens": ev.max_new_tokens,
        "batch_size": ev.batch_size,
        "judge": judge,
        "answer_mode": params.rewards.accuracy_mode,
        "bootstrap_samples": ev.bootstrap_samples,
        "seed": ev.seed,
    }

    context.log.info("evaluating the base LM on %d test questions", len(rows))
    base = evaluate_model(base_path, rows, **settings)
    context.log.info("evaluating the trained LM (%s)", trained["model_uri"])
    tuned = evaluate_model(trained["final_model_path"], rows, **settings)
    results = {"base": base.aggregate, "trained": tuned.aggregate}
    write_per_sample(out / "samples" / "base.jsonl", base.per_sample)
    write_per_sample(out / "samples" / "trained.jsonl", tuned.per_sample)

    perfect = None
    if ev.perfect_perception and params.perception.backend == "oracle":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base_path, trust_remote_code=params.lm.trust_remote_code)
        perfect_rows = perfect_perception_test_rows(params, layout, tokenizer)
        if perfect_rows:
            perfect = evaluate_model(trained["final_model_path"], perfect_rows, **settings)
            results["trained, perfect perception"] = perfect.aggregate
            write_per_sample(out / "samples" / "trained_perfect_perception.jsonl", perfect.per_sample)

    test_sha = sha256_file(test_path)
    checks = json.loads((layout.descriptions / CHECKS_FILE).read_text())
    failed_checks = sorted(name for name, outcome in checks.items() if not outcome["success"])

    experiment_id = mlflow.configure()
    client = mlflow_lib.MlflowClient()
    decision = promote_if_better(
        client,
        params.tracking.registered_model,
        trained["version"],
        pooled_accuracy=tuned.aggregate["pooled_accuracy"],
        test_set_sha256=test_sha,
        checks_passed=not failed_checks,
        failed_checks=failed_checks,
        margin=ev.promotion_margin,
    )
    context.log.info("promotion: %s", decision.reason)

    category_png = category_accuracy_png(results, out / "category_accuracy.png")
    curves_png = training_curves_png(client, trained["run_id"], out / "training_curves.png")
    document = build_results(
        tuned.aggregate,
        model_uri=trained["model_uri"],
        model_version=trained["version"],
        test_set_path=test_path,
        params=params,
        generation={k: v for k, v in tuned.settings.items()},
        root=layout.root,
        extra={
            "base": base.aggregate,
            "base_model": str(base_path),
            "comparison": compare(base, tuned),
            "perfect_perception": None if perfect is None else perfect.aggregate,
            "promotion": decision.model_dump(mode="json"),
        },
    )
    write_results(out / "results.json", document)
    write_json(out / "metrics.json", {label: _metrics_row(agg) for label, agg in results.items()})

    run_id = trained["run_id"]
    for label, agg in results.items():
        prefix = "eval/" + label.replace(", ", "_").replace(" ", "_")
        client.log_metric(run_id, f"{prefix}/pooled_accuracy", agg["pooled_accuracy"])
        client.log_metric(run_id, f"{prefix}/format_compliance", agg["format_compliance"])
    for path in (out / "results.json", category_png, curves_png):
        client.log_artifact(run_id, str(path), artifact_path="evaluation")

    table = markdown_table(base.aggregate, tuned.aggregate)
    if perfect is not None:
        table += (
            f"\n\nWith perfect (zero-noise) perception the trained LM scores "
            f"{perfect.aggregate['pooled_accuracy']:.3f} pooled (vs {tuned.aggregate['pooled_accuracy']:.3f} with "
            "the default perception noise)."
        )
    return dg.MaterializeResult(
        metadata={
            "pooled_accuracy_base": base.aggregate["pooled_accuracy"],
            "pooled_accuracy_trained": tuned.aggregate["pooled_accuracy"],
            "pooled_accuracy_perfect_perception": None if perfect is None else perfect.aggregate["pooled_accuracy"],
            "test_questions": len(rows),
            "results": dg.MetadataValue.md(table),
            "category_accuracy": image_markdown(category_png, "Accuracy per category", max_width=900),
            "training_curves": image_markdown(curves_png, "Training curves", max_width=900),
            "promoted": decision.promoted,
            "promotion_reason": decision.reason,
            "mlflow_run": dg.MetadataValue.url(mlflow.run_url(experiment_id, run_id)),
            "path": dg.MetadataValue.path(str(out)),
        }
    )
