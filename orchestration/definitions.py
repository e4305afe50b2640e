"""The embodied-r Dagster code location.

Load it with ``dagster dev -m orchestration.definitions`` (``make ui``) or check it with
``dagster definitions validate -m orchestration.definitions``. Runs execute in-process;
``DAGSTER_HOME`` (``.dagster_home/``, set by the Makefile and the CLI) keeps the instance,
so dynamic partitions survive between commands. Every params file shares that instance: a video's
partition key carries its dataset (``<data_dir>::<video_id>``, see :mod:`orchestration.partitions`).
"""

import warnings

import dagster as dg

# The single-run backfill policy (one process for many video partitions) is marked beta.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from orchestration import checks  # noqa: E402
from orchestration.assets import data, evaluation, grpo, keyframes, perception, supervised, training  # noqa: E402
from orchestration.resources import MlflowResource, ProjectResource  # noqa: E402

project = ProjectResource()

defs = dg.Definitions(
    assets=[
        data.raw_videos,
        keyframes.keyframes,
        perception.vlm_descriptions,
        training.base_lm,
        training.training_set,
        supervised.warm_lm,
        supervised.sft_lm,
        grpo.grpo_lm,
        evaluation.evaluation_results,
    ],
    asset_checks=[checks.perception_data_checks],
    resources={"project": project, "mlflow": MlflowResource(project=project)},
    executor=dg.in_process_executor,
)
