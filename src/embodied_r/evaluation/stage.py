"""The evaluation stage over a project (the library side of ``evaluation_results``).

:func:`evaluate_lineage` decodes the test split with every model of the lineage (base LM, warm start, GRPO, SFT
baseline, each from its stage's pointer), reruns the trained models at other perception-noise levels on the
embedded world (:func:`noisy_test_rows`), splits in-distribution from held-out categories, compares GRPO with where
it started, draws the plots, logs into the GRPO model's MLflow run and moves the ``champion`` alias only when the
GRPO model beats the current champion (:func:`~embodied_r.evaluation.promotion.promote_if_better`). It writes::

    results.json       the GRPO model's aggregate with provenance, and every model, the comparison, the noise
                       study, the generalisation split and the promotion decision under ``extra``
    metrics.json       one row of headline metrics per model (and per noise level, per category part)
    samples/*.jsonl    per-question outputs of every pass
    *.png              accuracy per category, training curves, accuracy vs perception noise
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embodied_r.config import Params
from embodied_r.data.ingest import read_videos
from embodied_r.data.records import read_records, write_json
from embodied_r.errors import UserError
from embodied_r.layout import Layout
from embodied_r.models.pointers import (
    GRPO_POINTER,
    SFT_LM_POINTER,
    WARM_LM_POINTER,
    read_base_lm_path,
    read_pointer,
    require_upstream,
)
from embodied_r.perception.cache import DescriptionCache
from embodied_r.perception.describe import describe_samples
from embodied_r.training.dataset import build_training_set, read_training_rows
from embodied_r.training.rows import TrainingRow
from embodied_r.validation.recorded import failed_checks

log = logging.getLogger(__name__)

#: The oracle's noise settings a noise study may change.
NOISE_KEYS = ("miss_object_prob", "wrong_color_prob", "wrong_action_prob")
#: Column labels of the models, in the order of the tables and plots.
BASE, WARM, GRPO, SFT = "base", "warm-start", "grpo", "sft"


class EmptyTestSetError(UserError, ValueError):
    """The test split has no rows: there is nothing to evaluate."""


def noisy_test_rows(params: Params, layout: Layout, tokenizer: Any, noise: Mapping[str, float]) -> list[TrainingRow]:
    """The test questions described by the oracle at another noise level (e.g. all 0: perfect perception), as rows.

    Only for the embedded world (the oracle needs ground truth). ``noise`` overrides the oracle's
    ``miss_object_prob`` / ``wrong_color_prob`` / ``wrong_action_prob``. The descriptions go through the same
    cache as ``vlm_descriptions`` (another noise level is another cache key), so a rerun costs nothing.
    """
    if params.perception.backend != "oracle":
        raise ValueError("a perception-noise study needs perception.backend: oracle (the embedded world)")
    unknown = sorted(set(noise) - set(NOISE_KEYS))
    if unknown:
        raise ValueError(f"unknown noise settings {unknown}; allowed: {list(NOISE_KEYS)}")
    cfg = params.perception.model_copy(update=dict(noise))
    records = [r for r in read_records(layout.records) if r.split == "test"]
    outcome = describe_samples(
        records,
        keyframes_root=layout.keyframes,
        videos=read_videos(layout.raw),
        ground_truth_root=layout.raw / "ground_truth",
        cfg=cfg,
        cache=DescriptionCache(layout.root / params.perception.cache_dir),
        progress=False,
    )
    if outcome.failures:
        log.warning("%d test questions could not be described at noise %s", len(outcome.failures), dict(noise))
    build = build_training_set(outcome.samples, tokenizer, params.training_set)
    return build.rows_by_split["test"]


def lineage_models(params: Params, layout: Layout) -> dict[str, str]:
    """Label → model folder of each model to evaluate, in table order, read from the stages' pointers."""
    warm = read_pointer(layout.models, WARM_LM_POINTER)
    sft = read_pointer(layout.models, SFT_LM_POINTER)
    models = {BASE: str(read_base_lm_path(layout.models))} if params.evaluation.base_model else {}
    if warm["enabled"]:
        models[WARM] = warm["path"]
    models[GRPO] = read_pointer(layout.models, GRPO_POINTER)["final_model_path"]
    if sft["enabled"]:
        models[SFT] = sft["path"]
    return models


def metrics_row(agg: Mapping[str, Any]) -> dict[str, Any]:
    """The headline metrics of one aggregate, as a row of ``metrics.json``."""
    keys = ("pooled_accuracy", "category_mean_accuracy", "format_compliance", "answer_rate", "mean_completion_tokens",
            "top_answer_share", "constant_answer_accuracy", "answer_shares", "truncated_rate")  # fmt: skip
    row = {k: agg.get(k) for k in keys}
    row["pooled_accuracy_ci95"] = agg.get("pooled_accuracy_ci95")
    row["consistency_rate"] = agg.get("consistency_rate")
    row["per_category"] = {c: v["accuracy"] for c, v in agg.get("per_category", {}).items()}
    row["per_source"] = agg.get("per_source")  # each benchmark's accuracy and 95% CI (UrbanVideo-Bench, VSI-Bench)
    return row


@dataclass
class LineageEvaluation:
    """What :func:`evaluate_lineage` measured and decided (everything it wrote is under ``out``)."""

    out: Path
    test_questions: int
    models: dict[str, str]
    results: dict[str, dict]  # label → aggregate on the test split
    noise: dict[str, dict]  # "<label>, <level> noise" → aggregate
    generalisation: dict[str, dict]  # label → {"in_distribution": agg, "held_out_categories": agg}
    held_out: list[str]
    reference: str | None  # what GRPO is compared with (warm start, else base), if evaluated
    comparison: dict | None
    decision: Any  # embodied_r.evaluation.promotion.PromotionDecision
    read_back: dict[str, int]  # completions kept by an earlier, interrupted run, by pass
    warnings: list[str]  # models whose completions the token budget cut
    plots: dict[str, Path]  # "category_accuracy" / "training_curves" / "noise_study" → PNG
    table: str  # markdown: every model, the noise study and the generalisation split
    experiment_id: str
    run_id: str  # the GRPO model's MLflow run, where the evaluation is logged


def evaluate_lineage(params: Params, layout: Layout) -> LineageEvaluation:
    """Evaluate every model of the lineage, write the results and plots, log them and decide the promotion."""
    import mlflow

    from embodied_r.evaluation.generate import compare, evaluate_model
    from embodied_r.evaluation.metrics import truncation_warning
    from embodied_r.evaluation.plots import category_accuracy_png, noise_study_png, training_curves_png
    from embodied_r.evaluation.promotion import promote_if_better
    from embodied_r.evaluation.report import build_results, sha256_file, write_per_sample, write_results
    from embodied_r.rewards.judges import build_judge
    from embodied_r.tracking import configure_tracking

    ev = params.evaluation
    out = layout.evaluation
    out.mkdir(parents=True, exist_ok=True)
    test_path = require_upstream(layout.training_set / "test.jsonl", "training_set")
    rows = read_training_rows(test_path)
    if not rows:
        raise EmptyTestSetError(f"{test_path} has no rows: nothing to evaluate")
    base_path = read_base_lm_path(layout.models)
    trained = read_pointer(layout.models, GRPO_POINTER)
    warm = read_pointer(layout.models, WARM_LM_POINTER)
    sft = read_pointer(layout.models, SFT_LM_POINTER)
    models = lineage_models(params, layout)

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
    read_back: dict[str, int] = {}
    warnings: list[str] = []

    def run_pass(label: str, path: str, pass_rows: list[TrainingRow], samples_name: str):
        result = evaluate_model(path, pass_rows, **settings)
        read_back[label] = result.settings["reused_rows"]
        write_per_sample(out / "samples" / f"{samples_name}.jsonl", result.per_sample)
        warning = truncation_warning(label, result.aggregate, ev.max_new_tokens)
        if warning:
            log.warning(warning)
            warnings.append(warning)
        return result

    for label, path in models.items():
        log.info("evaluating %s (%s) on %d test questions", label, path, len(rows))
        evaluated[label] = run_pass(label, path, rows, label)
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
                log.info("evaluating %s at %s perception noise", label, level)
                result = run_pass(f"{label}, {level} noise", models[label], noisy_rows, f"{label}_{level}_noise")
                noise[f"{label}, {level} noise"] = result.aggregate
    default_noise = {k: getattr(params.perception, k) for k in NOISE_KEYS}

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
    failed = failed_checks(layout.descriptions)
    experiment_id = configure_tracking(params.tracking, layout.root)
    client = mlflow.MlflowClient()
    decision = promote_if_better(
        client,
        params.tracking.registered_model,
        trained["version"],
        pooled_accuracy=results[GRPO]["pooled_accuracy"],
        test_set_sha256=test_sha,
        checks_passed=not failed,
        failed_checks=failed,
        margin=ev.promotion_margin,
        pooled_accuracy_ci95=results[GRPO].get("pooled_accuracy_ci95"),  # shown by `registry promote`
    )
    log.info("promotion: %s", decision.reason)

    supervised_runs = {label: p["run_id"] for label, p in ((WARM, warm), (SFT, sft)) if p.get("run_id")}
    plots = {
        "category_accuracy": category_accuracy_png(results, out / "category_accuracy.png"),
        "training_curves": training_curves_png(client, trained["run_id"], out / "training_curves.png", supervised_runs),
        # Always drawn (a DVC plot): with no study it shows the default noise alone.
        "noise_study": noise_study_png(
            {label: results[label] for label in (GRPO, SFT) if label in results}, noise, out / "noise_study.png"
        ),
    }
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
    metrics = {label: metrics_row(agg) for label, agg in {**results, **noise}.items()}
    for label, parts in generalisation.items():
        for part, agg in parts.items():
            if agg is not None:
                metrics[f"{label}, {part.replace('_', ' ')}"] = metrics_row(agg)
    write_json(out / "metrics.json", metrics)

    evaluation = LineageEvaluation(
        out=out, test_questions=len(rows), models=models, results=results, noise=noise, generalisation=generalisation,
        held_out=sorted(held_out), reference=reference, comparison=comparison, decision=decision, read_back=read_back,
        warnings=warnings, plots=plots, table="", experiment_id=experiment_id, run_id=trained["run_id"],
    )  # fmt: skip
    _log_to_run(client, evaluation)
    evaluation.table = results_markdown(evaluation)
    return evaluation


def _log_to_run(client: Any, evaluation: LineageEvaluation) -> None:
    """Headline metrics, the gain over the reference and the result files, into the GRPO model's MLflow run."""
    run_id, comparison = evaluation.run_id, evaluation.comparison
    for label, agg in {**evaluation.results, **evaluation.noise}.items():
        prefix = "eval/" + label.replace(", ", "_").replace(" ", "_")
        client.log_metric(run_id, f"{prefix}/pooled_accuracy", agg["pooled_accuracy"])
        client.log_metric(run_id, f"{prefix}/format_compliance", agg["format_compliance"])
        if agg.get("top_answer_share") is not None:
            client.log_metric(run_id, f"{prefix}/top_answer_share", agg["top_answer_share"])
    if comparison is not None and comparison["paired_delta"] is not None:
        client.log_metric(run_id, "eval/gain_over_reference", comparison["paired_delta"])
        for bound, value in zip(("low", "high"), comparison["paired_delta_ci95"], strict=True):
            client.log_metric(run_id, f"eval/gain_over_reference_ci95_{bound}", value)
    plots = evaluation.plots
    for path in (evaluation.out / "results.json", plots["category_accuracy"], plots["training_curves"],
                 plots["noise_study"]):  # fmt: skip
        client.log_artifact(run_id, str(path), artifact_path="evaluation")


def results_markdown(evaluation: LineageEvaluation) -> str:
    """Every model's table (with GRPO's delta over its reference), then the noise study and the generalisation."""
    from embodied_r.evaluation.report import markdown_table, pooled_table

    results, noise, reference = evaluation.results, evaluation.noise, evaluation.reference
    table = markdown_table(results, delta=(reference, GRPO) if reference else None)
    if noise:
        default = {f"{label}, default noise": results[label] for label in (GRPO, SFT) if label in results}
        table += "\n\n**Perception-noise study**\n\n" + pooled_table({**default, **noise})
    if evaluation.generalisation:
        parts = {
            f"{label}, {part.replace('_', ' ')}": agg
            for label, by_part in evaluation.generalisation.items()
            for part, agg in by_part.items()
            if agg is not None
        }
        held_out = ", ".join(evaluation.held_out)
        table += f"\n\n**Generalisation** (held-out categories: {held_out})\n\n" + pooled_table(parts)
    return table
