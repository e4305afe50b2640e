"""The embodied-r Dagster code location.

Load it with ``embodied-r ui`` (``make ui``, which runs ``dagster dev -m orchestration.definitions``) or check it
with ``dagster definitions validate -m orchestration.definitions``. ``DAGSTER_HOME`` (``.dagster_home/``, set by the
Makefile and the CLI) keeps the instance, so dynamic partitions survive between commands. Every params file shares
that instance: a video's partition key carries its dataset (``<data_dir>::<video_id>``, see
:mod:`orchestration.partitions`).

Where the project is. The assets read the project root and params file from the ``project`` resource's config,
never from the process's environment behind its back. ``embodied-r materialize`` builds the definitions with its
``--root`` and ``--params`` (:func:`build_definitions`). ``dagster dev`` imports this module and takes no
arguments, so :data:`defs` declares its two inputs as ``dg.EnvVar`` — Dagster's documented way to feed resource
config from the environment, shown as such in the UI's resource page — and ``embodied-r ui`` sets them
(``EMBODIED_R_ROOT``, ``EMBODIED_R_PARAMS``). A workspace file cannot pass a params file to a module; an env var
declared here is one visible place. Running ``dagster dev`` by hand: set both, or the runs fail naming the unset one.

What is stale. Each asset's ``code_version`` hashes the code its DVC stage (the same name) lists in ``dvc.yaml``'s
``deps`` (:func:`orchestration.assets.code_version`), so the UI's "code version changed" and ``dvc repro`` follow
the same files.

How runs execute. In-process by default; ``orchestration.executor`` in params.yaml picks the multiprocess executor
or a deployment's own (``module:attribute``), see :func:`executor_for` — a setting, not a code change.
"""

from __future__ import annotations

import importlib
import warnings

import dagster as dg

from embodied_r.config import OrchestrationConfig
from embodied_r.errors import UserError

# The single-run backfill policy (one process for many video partitions) is marked beta.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from orchestration import checks  # noqa: E402
from orchestration.assets import data, evaluation, grpo, keyframes, perception, predictions, supervised, training  # noqa: E402
from orchestration.resources import MlflowResource, ProjectResource  # noqa: E402
from orchestration.sensors import inbox_sensor, predictions_job  # noqa: E402

#: The environment variables the UI's code location reads the project root, params file and profiles from.
UI_ROOT_ENV = "EMBODIED_R_ROOT"
UI_PARAMS_ENV = "EMBODIED_R_PARAMS"
UI_PROFILES_ENV = "EMBODIED_R_PROFILES"

ASSETS = [
    data.raw_videos,
    keyframes.keyframes,
    perception.vlm_descriptions,
    training.base_lm,
    training.training_set,
    supervised.warm_lm,
    supervised.sft_lm,
    grpo.grpo_lm,
    evaluation.evaluation_results,
    predictions.predictions,
]
ASSET_CHECKS = [checks.perception_data_checks]

#: The job :func:`materialization_job` builds.
MATERIALIZATION_JOB = "materialize"


class ExecutorError(UserError, ValueError):
    """``orchestration.executor`` names an executor that cannot be imported."""


def executor_for(settings: OrchestrationConfig) -> dg.ExecutorDefinition:
    """The Dagster executor ``orchestration`` (params.yaml) names.

    ``in_process``: every step in the process that runs the job. ``multiprocess``: a process per step, at most
    ``max_concurrent`` at once (0: Dagster's default, one per CPU). ``module:attribute``: that
    ``ExecutorDefinition`` (``dagster_k8s:k8s_job_executor``, ``dagster_celery:celery_executor``), configured
    with ``executor_config``; its package must be installed.
    """
    if settings.executor == "in_process":
        return dg.in_process_executor
    if settings.executor == "multiprocess":
        if settings.max_concurrent:
            return dg.multiprocess_executor.configured({"max_concurrent": settings.max_concurrent})
        return dg.multiprocess_executor
    module, attribute = settings.executor.split(":")
    try:
        executor = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise ExecutorError(
            f"orchestration.executor {settings.executor!r} cannot be imported ({exc}): install its package "
            "(e.g. pip install dagster-k8s) or set orchestration.executor: in_process"
        ) from None
    if not isinstance(executor, dg.ExecutorDefinition):
        raise ExecutorError(
            f"orchestration.executor {settings.executor!r} is a {type(executor).__name__}, not a Dagster executor "
            "(an ExecutorDefinition such as dagster_k8s:k8s_job_executor)"
        )
    return executor.configured(settings.executor_config) if settings.executor_config else executor


def build_definitions(
    project: ProjectResource, executor: dg.ExecutorDefinition | None = None, jobs: list | None = None
) -> dg.Definitions:
    """The code location for the project ``project`` points at, its runs on ``executor`` (in-process)."""
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=ASSET_CHECKS,
        jobs=[*(jobs or []), predictions_job],
        sensors=[inbox_sensor],
        resources={"project": project, "mlflow": MlflowResource(project=project)},
        executor=executor or dg.in_process_executor,
    )


def materialization_job(root: str, params_file: str, selection: list[str], profiles: str = "") -> dg.JobDefinition:
    """The job ``embodied-r materialize`` runs on a non-in-process executor: ``selection`` of the project at
    ``root`` with ``params_file`` (and ``profiles`` on top), on the executor its ``orchestration`` section names.

    Dagster rebuilds it by name from these arguments in every step's process (``dg.build_reconstructable_job``),
    so each process reads the same params and nothing travels through the environment.
    """
    project = ProjectResource(root=root, params_file=params_file, profiles=profiles)
    executor = executor_for(project.load_params().orchestration)
    job = dg.define_asset_job(MATERIALIZATION_JOB, selection=selection, executor_def=executor)
    return build_definitions(project, executor, jobs=[job]).resolve_job_def(MATERIALIZATION_JOB)


def _ui_executor() -> dg.ExecutorDefinition:
    """The executor of the UI's runs: the one the params file ``embodied-r ui`` names (in-process without one)."""
    root = dg.EnvVar(UI_ROOT_ENV).get_value()
    if not root:  # `dagster definitions validate` and imports by tests: no project named, nothing runs
        return dg.in_process_executor
    project = ProjectResource(
        root=root,
        params_file=dg.EnvVar(UI_PARAMS_ENV).get_value() or "params.yaml",
        profiles=dg.EnvVar(UI_PROFILES_ENV).get_value() or "",
    )
    return executor_for(project.load_params().orchestration)


#: What ``dagster dev`` loads (``embodied-r ui``): the project named by the declared environment variables. The
#: profiles are a value, not an EnvVar, so the UI's resource page shows them (and `dagster dev` alone needs none).
defs = build_definitions(
    ProjectResource(
        root=dg.EnvVar(UI_ROOT_ENV),
        params_file=dg.EnvVar(UI_PARAMS_ENV),
        profiles=dg.EnvVar(UI_PROFILES_ENV).get_value() or "",
    ),
    _ui_executor(),
)
