"""Supervised models next to GRPO: ``warm_lm`` (the format cold start GRPO starts from) and ``sft_lm`` (the SFT
baseline of the paper's RQ7). Each is optional; switched off, ``warm_lm`` passes the base LM through and
``sft_lm`` records that there is no baseline. Library: :mod:`embodied_r.training.stage`."""

import dagster as dg

from embodied_r.training.stage import SupervisedStage, train_sft, train_warm_start
from orchestration.assets import code_version
from orchestration.assets.training import base_lm, training_set
from orchestration.resources import MlflowResource, ProjectResource
from orchestration.stages import library_stage, run_hooks


def _metadata(stage: SupervisedStage) -> dict:
    """The run's link, the model's folder and the check's dicts as Dagster values (switched off: as they are)."""
    if not stage.trained:
        return stage.metadata
    values = {k: (dg.MetadataValue.json(v) if isinstance(v, dict) else v) for k, v in stage.metadata.items()}
    return {
        **values,
        "mlflow_run": dg.MetadataValue.url(values["mlflow_run"]),
        "path": dg.MetadataValue.path(values["path"]),
    }


@dg.asset(
    group_name="training",
    kinds={"pytorch", "mlflow"},
    deps=[training_set, base_lm],
    code_version=code_version("warm_lm"),
)
def warm_lm(
    context: dg.AssetExecutionContext, project: ProjectResource, mlflow: MlflowResource
) -> dg.MaterializeResult:
    """The model GRPO starts from: the base LM after the optional format cold start (``cold_start.*``).

    The warm-up teaches only the output contract — a neutral ``<think>`` and a uniformly random ``<answer>``
    letter (``cold_start.letters``: drawn alone, balanced within every step, or every option of a question in
    turn) — so no answer is supervised.
    Not in the paper (off in the paper profile: the base LM passes through).
    Metadata: the loss, and the format compliance and letters used on a few validation questions.
    """
    params = project.load_params()
    with library_stage(context):
        stage = train_warm_start(params, project.layout(params), run_hooks(context, mlflow))
    return dg.MaterializeResult(metadata=_metadata(stage))


@dg.asset(
    group_name="training",
    kinds={"pytorch", "mlflow"},
    deps=[training_set, base_lm],
    code_version=code_version("sft_lm"),
)
def sft_lm(context: dg.AssetExecutionContext, project: ProjectResource, mlflow: MlflowResource) -> dg.MaterializeResult:
    """The SFT baseline (the paper's RQ7): the base LM fine-tuned on templated reasoning traces that end in the
    correct answer (``sft.*``; off unless ``sft.enabled``). Evaluated next to the GRPO model."""
    params = project.load_params()
    with library_stage(context):
        stage = train_sft(params, project.layout(params), run_hooks(context, mlflow))
    return dg.MaterializeResult(metadata=_metadata(stage))
