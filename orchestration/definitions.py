"""The embodied-r Dagster code location.

Load it with ``dagster dev -m orchestration.definitions`` (``make ui``) or check it with
``dagster definitions validate -m orchestration.definitions``. Runs execute in-process;
``DAGSTER_HOME`` (``.dagster_home/``, set by the Makefile and the CLI) keeps the instance,
so dynamic partitions survive between commands.
"""

import dagster as dg

from orchestration.assets import data
from orchestration.resources import MlflowResource, ProjectResource

project = ProjectResource()

defs = dg.Definitions(
    assets=[data.raw_videos],
    resources={"project": project, "mlflow": MlflowResource(project=project)},
    executor=dg.in_process_executor,
)
