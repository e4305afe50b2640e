"""``grpo_lm``: the reasoning LM trained with GRPO on the paper's three rewards and weight schedule
(library: :func:`embodied_r.training.stage.train_grpo_stage`)."""

import dagster as dg

from embodied_r.training.stage import train_grpo_stage
from orchestration.assets import code_version
from orchestration.assets.supervised import warm_lm
from orchestration.assets.training import base_lm, training_set
from orchestration.resources import MlflowResource, ProjectResource
from orchestration.stages import library_stage, run_hooks


@dg.asset(
    group_name="training",
    kinds={"pytorch", "mlflow"},
    deps=[training_set, base_lm, warm_lm],
    code_version=code_version("grpo_lm"),
)
def grpo_lm(
    context: dg.AssetExecutionContext, project: ProjectResource, mlflow: MlflowResource
) -> dg.MaterializeResult:
    """GRPO on the training split (TRL), rewards format / accuracy / consistency with the staged weights,
    starting from ``warm_lm`` (the base LM itself when the cold start is off); the consistency judge is a frozen
    copy of the base LM.

    One MLflow run per materialization (params, per-step metrics, sample completions); the final model is
    logged and registered as a new version of ``tracking.registered_model``. Checkpoints live in
    ``.cache/grpo/<training key>/``: an interrupted run resumes from the last complete one, closes the MLflow run
    (KILLED) and Dagster run (failed) the kill left open, and continues the curve. A second materialization of the
    same training while one runs is refused (the folder's writer lock names the holder).
    """
    params = project.load_params()
    with library_stage(context):
        stage = train_grpo_stage(params, project.layout(params), run_hooks(context, mlflow))
    metadata = stage.metadata
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "mlflow_run": dg.MetadataValue.url(metadata["mlflow_run"]),
            "final_weights": dg.MetadataValue.json(metadata["final_weights"]),
            "final_metrics": dg.MetadataValue.json(metadata["final_metrics"]),
        }
    )
