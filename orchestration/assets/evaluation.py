"""``evaluation_results``: every model of the lineage on the test split, the noise study, generalisation to held-out
categories, plots, and gated promotion of the GRPO model. Library: :func:`embodied_r.evaluation.stage.evaluate_lineage`.
"""

import dagster as dg

from embodied_r.evaluation.stage import EmptyTestSetError, evaluate_lineage
from orchestration.assets import code_version
from orchestration.assets.grpo import grpo_lm
from orchestration.assets.supervised import sft_lm, warm_lm
from orchestration.assets.training import base_lm, training_set
from orchestration.media import image_markdown
from orchestration.resources import MlflowResource, ProjectResource
from orchestration.stages import library_stage


def _model_key(label: str) -> str:
    """A model's label as a metadata key part: ``warm-start`` → ``warm_start``."""
    return label.replace("-", "_")


def _noise_key(label: str) -> str:
    """A noise pass's label as a metadata key part: ``grpo, high noise`` → ``grpo_high_noise``."""
    return label.replace(", ", "_").replace(" ", "_")


@dg.asset(
    group_name="evaluation",
    kinds={"pytorch", "mlflow"},
    deps=[grpo_lm, warm_lm, sft_lm, base_lm, training_set],
    code_version=code_version("evaluation_results"),
)
def evaluation_results(
    context: dg.AssetExecutionContext, project: ProjectResource, mlflow: MlflowResource
) -> dg.MaterializeResult:
    """Greedy, batched decoding of the test split by each model of the lineage — base LM, warm start (cold start
    on), GRPO, SFT baseline (when enabled), each from its upstream asset — with pooled and per-category accuracy
    and 95% bootstrap intervals, format compliance, think–answer consistency and completion length; on the
    embedded world the GRPO (and SFT) model again at other perception-noise levels; in-distribution vs held-out
    categories; plots; and the ``champion`` alias moved only when the GRPO model beats the current champion on
    the same test set by ``evaluation.promotion_margin``."""
    params = project.load_params()
    with library_stage(context, EmptyTestSetError):
        ev = evaluate_lineage(params, project.layout(params))
    comparison, reference = ev.comparison, ev.reference
    gain = {}
    if comparison is not None and comparison["paired_delta"] is not None:
        ci = "[{:+.1%}, {:+.1%}] (paired bootstrap over the same questions)".format(*comparison["paired_delta_ci95"])
        gain = {
            f"grpo_gain_over_{_model_key(reference)}": comparison["paired_delta"],
            "grpo_gain_ci95": dg.MetadataValue.text(ci),
        }
    metadata = {
        **{f"pooled_accuracy_{_model_key(label)}": agg["pooled_accuracy"] for label, agg in ev.results.items()},
        **{f"pooled_accuracy_{_noise_key(label)}": agg["pooled_accuracy"] for label, agg in ev.noise.items()},
        "test_questions": ev.test_questions,
        "completions_read_back": dg.MetadataValue.json(ev.read_back),
        **gain,
        "results": dg.MetadataValue.md(ev.table),
        "category_accuracy": image_markdown(ev.plots["category_accuracy"], "Accuracy per category", max_width=900),
        "training_curves": image_markdown(ev.plots["training_curves"], "Training curves", max_width=900),
        # found by the model folder's DVC hash, or registered here when DVC restored a model trained elsewhere
        "registered_version": ev.registered.how if ev.registered else "",
        "promoted": ev.decision.promoted,
        "promotion_reason": ev.decision.reason,
        "mlflow_run": dg.MetadataValue.url(mlflow.run_url(ev.experiment_id, ev.run_id)),
        "path": dg.MetadataValue.path(str(ev.out)),
    }
    if ev.noise:
        metadata["noise_study"] = image_markdown(ev.plots["noise_study"], "Accuracy vs perception noise", max_width=700)
    if ev.warnings:
        metadata["warnings"] = dg.MetadataValue.md("\n".join(f"- {w}" for w in ev.warnings))
    return dg.MaterializeResult(metadata=metadata)
