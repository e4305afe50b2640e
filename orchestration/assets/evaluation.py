"""``evaluation_results``: every model of the lineage on the test split, the noise study, generalisation to held-out
categories, plots, and gated promotion of the GRPO model."""

import json

import dagster as dg

from embodied_r.data.records import write_json
from embodied_r.evaluation.generate import compare, evaluate_model
from embodied_r.evaluation.metrics import truncation_warning
from embodied_r.evaluation.plots import category_accuracy_png, noise_study_png, training_curves_png
from embodied_r.evaluation.promotion import promote_if_better
from embodied_r.evaluation.report import (
    build_results,
    markdown_table,
    pooled_table,
    sha256_file,
    write_per_sample,
    write_results,
)
from embodied_r.evaluation.stage import noisy_test_rows
from embodied_r.rewards import build_judge
from embodied_r.training.dataset import read_training_rows
from orchestration.assets import require_upstream
from orchestration.assets.grpo import grpo_lm, read_grpo_pointer
from orchestration.assets.supervised import SFT_LM_POINTER, WARM_LM_POINTER, read_model_pointer, sft_lm, warm_lm
from orchestration.assets.training import base_lm, read_base_lm_path, training_set
from orchestration.checks import CHECKS_FILE
from orchestration.media import image_markdown
from orchestration.resources import MlflowResource, ProjectResource

#: Column labels of the models, in the order of the tables and plots.
BASE, WARM, GRPO, SFT = "base", "warm-start", "grpo", "sft"


def _metrics_row(agg: dict) -> dict:
    keys = ("pooled_accuracy", "category_mean_accuracy", "format_compliance", "answer_rate", "mean_completion_tokens",
            "top_answer_share", "constant_answer_accuracy", "answer_shares", "truncated_rate")  # fmt: skip
    row = {k: agg.get(k) for k in keys}
    row["pooled_accuracy_ci95"] = agg.get("pooled_accuracy_ci95")
    row["consistency_rate"] = agg.get("consistency_rate")
    row["per_category"] = {c: v["accuracy"] for c, v in agg.get("per_category", {}).items()}
    row["per_source"] = agg.get("per_source")  # each benchmark's accuracy and 95% CI (UrbanVideo-Bench, VSI-Bench)
    return row


@dg.asset(group_name="evaluation", kinds={"pytorch", "mlflow"}, deps=[grpo_lm, warm_lm, sft_lm, base_lm, training_set])
def evaluation_results(
    context: dg.AssetExecutionContext, project: ProjectResource, mlflow: MlflowResource
) -> dg.MaterializeResult:
    """Greedy, batched decoding of the test split by each model of the lineage — base LM, warm start (cold start
    on), GRPO, SFT baseline (when enabled), each from its upstream asset — with pooled and per-category accuracy
    and 95% bootstrap intervals, format compliance, think–answer consistency and completion length; on the
    embedded world the GRPO (and SFT) model again at other perception-noise levels; in-distribution vs held-out
    categories; plots; and the ``champion`` alias moved only when the GRPO model beats the current champion on
    the same test set by ``evaluation.promotion_margin``."""
    import mlflow as mlflow_lib

    params = project.load_params()
    layout = project.layout(params)
    ev = params.evaluation
    out = layout.evaluation
    out.mkdir(parents=True, exist_ok=True)
    test_path = require_upstream(layout.training_set / "test.jsonl", "training_set")
    rows = read_training_rows(test_path)
    if not rows:
        raise dg.Failure(description=f"{test_path} has no rows: nothing to evaluate")
    base_path = read_base_lm_path(layout.models)
    trained = read_grpo_pointer(layout.models)
    warm = read_model_pointer(layout.models, WARM_LM_POINTER)
    sft = read_model_pointer(layout.models, SFT_LM_POINTER)
    models = {BASE: str(base_path)} if ev.base_model else {}
    if warm["enabled"]:
        models[WARM] = warm["path"]
    models[GRPO] = trained["final_model_path"]
    if sft["enabled"]:
        models[SFT] = sft["path"]

    judge = build_judge(params.rewards.judge, policy_model_path=str(base_path)) if ev.judge_consistency else None
    settings = {
        "max_new_tokens": ev.max_new_tokens,
        "batch_size": ev.batch_size,
        "judge": judge,
        "answer_mode": params.rewards.accuracy_mode,
        "bootstrap_samples": ev.bootstrap_samples,
        "seed": ev.seed,
        "precision": ev.precision,
        "keep_dir": layout.kept_generations,  # a stage killed in its last pass resumes there, not at the first
    }
    evaluated = {}
    read_back: dict[str, int] = {}  # completions kept by an earlier, interrupted run of this stage, by pass
    warnings: list[str] = []  # models whose completions the budget cut (their accuracy measures the budget)

    def warn_if_cut(label: str, agg: dict) -> None:
        warning = truncation_warning(label, agg, ev.max_new_tokens)
        if warning:
            context.log.warning(warning)
            warnings.append(warning)

    for label, path in models.items():
        context.log.info("evaluating %s (%s) on %d test questions", label, path, len(rows))
        evaluated[label] = evaluate_model(path, rows, **settings)
        read_back[label] = evaluated[label].settings["reused_rows"]
        write_per_sample(out / "samples" / f"{label}.jsonl", evaluated[label].per_sample)
        warn_if_cut(label, evaluated[label].aggregate)
    results = {label: result.aggregate for label, result in evaluated.items()}

    # Perception-noise study (embedded world): the trained models on the same questions at other noise levels.
    noise = {}
    if ev.noise_study and params.perception.backend == "oracle":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base_path, trust_remote_code=params.lm.trust_remote_code)
        for level, noise_settings in ev.noise_study.items():
            noisy_rows = noisy_test_rows(params, layout, tokenizer, noise_settings)
            for label in (GRPO, SFT):
                if label not in models or not noisy_rows:
                    continue
                context.log.info("evaluating %s at %s perception noise", label, level)
                result = evaluate_model(models[label], noisy_rows, **settings)
                read_back[f"{label}, {level} noise"] = result.settings["reused_rows"]
                noise[f"{label}, {level} noise"] = result.aggregate
                warn_if_cut(f"{label}, {level} noise", result.aggregate)
                write_per_sample(out / "samples" / f"{label}_{level}_noise.jsonl", result.per_sample)
    default_noise = {
        k: getattr(params.perception, k) for k in ("miss_object_prob", "wrong_color_prob", "wrong_action_prob")
    }

    # Generalisation: trained categories vs categories held out of training (the paper's RQ7 reads OOD).
    trained_categories = set(params.training_set.categories)
    held_out = {s["category"] for s in evaluated[GRPO].per_sample} - trained_categories
    generalisation = {}
    if held_out:
        for label, result in evaluated.items():
            parts = {"in_distribution": result.subset(trained_categories),
                     "held_out_categories": result.subset(held_out)}  # fmt: skip
            generalisation[label] = {name: part.aggregate if part else None for name, part in parts.items()}

    test_sha = sha256_file(test_path)
    checks = json.loads((layout.descriptions / CHECKS_FILE).read_text())
    failed_checks = sorted(name for name, outcome in checks.items() if not outcome["success"])

    experiment_id = mlflow.configure()
    client = mlflow_lib.MlflowClient()
    decision = promote_if_better(
        client,
        params.tracking.registered_model,
        trained["version"],
        pooled_accuracy=results[GRPO]["pooled_accuracy"],
        test_set_sha256=test_sha,
        checks_passed=not failed_checks,
        failed_checks=failed_checks,
        margin=ev.promotion_margin,
        pooled_accuracy_ci95=results[GRPO].get("pooled_accuracy_ci95"),  # shown by `registry promote`
    )
    context.log.info("promotion: %s", decision.reason)

    category_png = category_accuracy_png(results, out / "category_accuracy.png")
    supervised_runs = {label: p["run_id"] for label, p in ((WARM, warm), (SFT, sft)) if p.get("run_id")}
    curves_png = training_curves_png(client, trained["run_id"], out / "training_curves.png", supervised_runs)
    # Always drawn (a DVC plot): with no study it shows the default noise alone.
    noise_png = noise_study_png(
        {label: results[label] for label in (GRPO, SFT) if label in results}, noise, out / "noise_study.png"
    )
    reference = WARM if WARM in results else BASE if BASE in results else None
    comparison = None  # GRPO against where it started, question by question
    if reference is not None:
        pairs = compare(evaluated[reference], evaluated[GRPO], bootstrap_samples=ev.bootstrap_samples, seed=ev.seed)
        comparison = {"reference": reference, **pairs}
    document = build_results(
        results[GRPO],
        model_uri=trained["model_uri"],
        model_version=trained["version"],
        test_set_path=test_path,
        params=params,
        generation=dict(evaluated[GRPO].settings),
        root=layout.root,
        extra={
            "models": {label: {"path": path, "aggregate": results[label]} for label, path in models.items()},
            "comparison": comparison,
            "noise_study": {"default": default_noise, "levels": dict(ev.noise_study), "results": noise},
            "generalisation": {"held_out_categories": sorted(held_out), "results": generalisation},
            "promotion": decision.model_dump(mode="json"),
        },
    )  # fmt: skip
    write_results(out / "results.json", document)
    metrics = {label: _metrics_row(agg) for label, agg in {**results, **noise}.items()}
    for label, parts in generalisation.items():
        for part, agg in parts.items():
            if agg is not None:
                metrics[f"{label}, {part.replace('_', ' ')}"] = _metrics_row(agg)
    write_json(out / "metrics.json", metrics)

    run_id = trained["run_id"]
    for label, agg in {**results, **noise}.items():
        prefix = "eval/" + label.replace(", ", "_").replace(" ", "_")
        client.log_metric(run_id, f"{prefix}/pooled_accuracy", agg["pooled_accuracy"])
        client.log_metric(run_id, f"{prefix}/format_compliance", agg["format_compliance"])
        if agg.get("top_answer_share") is not None:
            client.log_metric(run_id, f"{prefix}/top_answer_share", agg["top_answer_share"])
    if comparison is not None and comparison["paired_delta"] is not None:
        client.log_metric(run_id, "eval/gain_over_reference", comparison["paired_delta"])
        for bound, value in zip(("low", "high"), comparison["paired_delta_ci95"], strict=True):
            client.log_metric(run_id, f"eval/gain_over_reference_ci95_{bound}", value)
    for path in (out / "results.json", category_png, curves_png, noise_png):
        client.log_artifact(run_id, str(path), artifact_path="evaluation")

    table = markdown_table(results, delta=(reference, GRPO) if reference else None)
    if noise:
        default = {f"{label}, default noise": results[label] for label in (GRPO, SFT) if label in results}
        table += "\n\n**Perception-noise study**\n\n" + pooled_table({**default, **noise})
    if generalisation:
        parts = {
            f"{label}, {part.replace('_', ' ')}": agg
            for label, by_part in generalisation.items()
            for part, agg in by_part.items()
            if agg is not None
        }
        table += f"\n\n**Generalisation** (held-out categories: {', '.join(sorted(held_out))})\n\n" + pooled_table(
            parts
        )
    metadata = {
        **{f"pooled_accuracy_{label.replace('-', '_')}": agg["pooled_accuracy"] for label, agg in results.items()},
        **{f"pooled_accuracy_{label.replace(', ', '_').replace(' ', '_')}": agg["pooled_accuracy"]
           for label, agg in noise.items()},
        "test_questions": len(rows),
        "completions_read_back": dg.MetadataValue.json(read_back),
        **({} if comparison is None or comparison["paired_delta"] is None else {
            f"grpo_gain_over_{reference.replace('-', '_')}": comparison["paired_delta"],
            "grpo_gain_ci95": dg.MetadataValue.text(
                "[{:+.1%}, {:+.1%}] (paired bootstrap over the same questions)".format(*comparison["paired_delta_ci95"])
            ),
        }),
        "results": dg.MetadataValue.md(table),
        "category_accuracy": image_markdown(category_png, "Accuracy per category", max_width=900),
        "training_curves": image_markdown(curves_png, "Training curves", max_width=900),
        "promoted": decision.promoted,
        "promotion_reason": decision.reason,
        "mlflow_run": dg.MetadataValue.url(mlflow.run_url(experiment_id, run_id)),
        "path": dg.MetadataValue.path(str(out)),
    }  # fmt: skip
    if noise:
        metadata["noise_study"] = image_markdown(noise_png, "Accuracy vs perception noise", max_width=700)
    if warnings:
        metadata["warnings"] = dg.MetadataValue.md("\n".join(f"- {w}" for w in warnings))
    return dg.MaterializeResult(metadata=metadata)
