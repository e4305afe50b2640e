"""The evaluation stage over a project (the library side of ``evaluation_results``).

:func:`evaluate_lineage` decodes the test split with every model of the lineage (base LM, warm start, GRPO, SFT
baseline, each from its stage's pointer), reruns the trained models at other perception-noise levels on the
embedded world (:func:`noisy_test_rows`), splits in-distribution from held-out categories, compares GRPO with where
it started, draws the plots, logs into the GRPO model's MLflow run and moves the ``champion`` alias only when the
GRPO model beats the current champion (:func:`~embodied_r.evaluation.promotion.promote_if_better`).

The version it promotes is the one registered from the model folder it evaluates (``data/models/grpo_lm/``),
found by the folder's DVC hash (:func:`find_or_register_grpo`): when DVC restored the folder without the training
running here (its run cache, or ``dvc pull`` on another machine) and this registry has no such version, the
evaluation registers it, and ``results.json`` says which (``extra.registry``). It writes::

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
    BASE_LM_POINTER,
    GRPO_POINTER,
    SFT_LM_POINTER,
    WARM_LM_POINTER,
    read_base_lm_path,
    read_pointer,
    require_upstream,
    resolve_model_path,
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
    """Label → model folder of each model to evaluate, in table order, as the stages' pointers name them (relative
    to the project root: :func:`~embodied_r.models.pointers.resolve_model_path` finds them on this machine)."""
    warm = read_pointer(layout.models, WARM_LM_POINTER)
    sft = read_pointer(layout.models, SFT_LM_POINTER)
    models = {BASE: read_pointer(layout.models, BASE_LM_POINTER)["path"]} if params.evaluation.base_model else {}
    if warm["enabled"]:
        models[WARM] = warm["path"]
    models[GRPO] = read_pointer(layout.models, GRPO_POINTER)["path"]
    if sft["enabled"]:
        models[SFT] = sft["path"]
    return models


@dataclass(frozen=True)
class RegisteredGrpo:
    """The registry version of the GRPO model folder the evaluation scores (:func:`find_or_register_grpo`)."""

    version: str
    model_uri: str
    run_id: str  # the MLflow run the version was logged in: the evaluation logs there too
    model_md5: str  # the folder's DVC hash (``dvc.lock``), the version's ``embodied_r.model_md5`` tag
    registered_here: bool  # True: this registry had no version of the folder; the evaluation registered it

    @property
    def how(self) -> str:
        """One sentence for the metadata: found, or registered by the evaluation and why."""
        if self.registered_here:
            return (f"registered v{self.version} from the model folder: this MLflow registry had no version of it "
                    "(DVC restored it without its training running here)")  # fmt: skip
        return f"found v{self.version}, registered from this model folder ({self.model_md5})"


def find_or_register_grpo(params: Params, layout: Layout, pointer: Mapping[str, Any]) -> RegisteredGrpo:
    """The version of ``tracking.registered_model`` registered from the GRPO model folder ``pointer`` names, found by
    the folder's DVC hash (the pointer's version first), or registered now when the registry has none.

    The GRPO stage registers what it trains; a stage DVC restored from its run cache, or pulled onto another
    machine, never ran here, so its version may be missing from this registry: it is registered in a new MLflow
    run (tagged ``embodied_r.trained_in_run`` with the training's run) and tagged like any other
    (:func:`embodied_r.models.registry.lineage_tags`). Call with MLflow configured (``configure_tracking``).
    """
    import mlflow

    from embodied_r.models.folders import dvc_md5
    from embodied_r.models.registry import find_version
    from embodied_r.tracking import create_run
    from embodied_r.training.stage import register_grpo_model

    folder = resolve_model_path(layout, pointer["path"])
    md5 = dvc_md5(folder)
    name = params.tracking.registered_model
    client = mlflow.MlflowClient()
    found = find_version(client, name, md5, prefer=pointer.get("version"))
    if found is not None:
        return RegisteredGrpo(str(found.version), found.source, found.run_id, md5, registered_here=False)
    tags = {
        "embodied_r.stage": "grpo_lm_registration",
        "embodied_r.profile": params.profile,
        "embodied_r.training_key": str(pointer.get("training_key", "")),
        "embodied_r.trained_in_run": str(pointer.get("run_id", "")),
    }
    settings = {k: params.model_dump(mode="json")[k] for k in ("grpo", "rewards", "lm", "training_set")}
    run_id, _ = create_run(params.tracking, layout.root, f"grpo-registration-{params.profile}", tags, settings)
    try:
        model_uri, version = register_grpo_model(params, layout, run_id, registered_by="evaluation_results")
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    log.warning("%s had no version of %s (%s): registered it as v%s", name, pointer["path"], md5, version)
    return RegisteredGrpo(str(version), model_uri, run_id, md5, registered_here=True)


def _runs_in_store(client: Any, run_ids: Mapping[str, str]) -> dict[str, str]:
    """The entries of ``run_ids`` whose run this MLflow store holds (a pulled lineage's runs may live elsewhere)."""
    from mlflow.exceptions import MlflowException

    kept = {}
    for label, run_id in run_ids.items():
        try:
            client.get_run(run_id)
        except MlflowException:
            log.info("MLflow run %s (%s) is not in this store: its curve is left out of the plot", run_id, label)
            continue
        kept[label] = run_id
    return kept


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
    registered: RegisteredGrpo | None = None  # the registry version scored and promoted (found or registered)


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
    base_path = read_base_lm_path(layout)
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
        evaluated[label] = run_pass(label, str(resolve_model_path(layout, path)), rows, label)
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
                model = str(resolve_model_path(layout, models[label]))
                result = run_pass(f"{label}, {level} noise", model, noisy_rows, f"{label}_{level}_noise")
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
    registered = find_or_register_grpo(params, layout, trained)
    log.info("GRPO model: %s", registered.how)
    decision = promote_if_better(
        client,
        params.tracking.registered_model,
        registered.version,
        pooled_accuracy=results[GRPO]["pooled_accuracy"],
        test_set_sha256=test_sha,
        checks_passed=not failed,
        failed_checks=failed,
        margin=ev.promotion_margin,
        pooled_accuracy_ci95=results[GRPO].get("pooled_accuracy_ci95"),  # shown by `registry promote`
    )
    log.info("promotion: %s", decision.reason)

    supervised_runs = {label: p["run_id"] for label, p in ((WARM, warm), (SFT, sft)) if p.get("run_id")}
    supervised_runs = _runs_in_store(client, supervised_runs)
    # The training's run when this store holds it; a lineage pulled from elsewhere has only its registration run.
    curves_run = next(iter(_runs_in_store(client, {GRPO: trained["run_id"]}).values()), registered.run_id)
    plots = {
        "category_accuracy": category_accuracy_png(results, out / "category_accuracy.png"),
        "training_curves": training_curves_png(client, curves_run, out / "training_curves.png", supervised_runs),
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
        model_uri=registered.model_uri,
        model_version=registered.version,
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
            "registry": {
                "version": registered.version,
                "model_md5": registered.model_md5,
                "run_id": registered.run_id,
                "registered_by_evaluation": registered.registered_here,
                "how": registered.how,
            },
        },
    )  # fmt: skip
    write_results(out / "results.json", document)
    from embodied_r.inference.card import write_model_card  # the version's card gets its test accuracy

    write_model_card(client, params, layout, version=registered.version, run_id=registered.run_id, results=document)
    metrics = {label: metrics_row(agg) for label, agg in {**results, **noise}.items()}
    for label, parts in generalisation.items():
        for part, agg in parts.items():
            if agg is not None:
                metrics[f"{label}, {part.replace('_', ' ')}"] = metrics_row(agg)
    write_json(out / "metrics.json", metrics)

    evaluation = LineageEvaluation(
        out=out, test_questions=len(rows), models=models, results=results, noise=noise, generalisation=generalisation,
        held_out=sorted(held_out), reference=reference, comparison=comparison, decision=decision, read_back=read_back,
        warnings=warnings, plots=plots, table="", experiment_id=experiment_id, run_id=registered.run_id,
        registered=registered,
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
