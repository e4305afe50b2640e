"""Wiring a library stage into a Dagster step: its log in the run's event log, its refusals as step failures, and
its MLflow run hooks."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from embodied_r.models.pointers import MissingUpstreamError
from embodied_r.training.checkpoints import RunLockedError
from embodied_r.training.stage import RunHooks
from orchestration.resources import MlflowResource

#: The library's loggers (``embodied_r.*``), whose records a stage's step forwards to its Dagster log.
LIBRARY_LOGGER = "embodied_r"


class _ToDagsterLog(logging.Handler):
    """Forwards library log records (INFO and above) to a step's Dagster log: the UI's event log, and the warnings
    the command line replays."""

    def __init__(self, dagster_log: logging.Logger) -> None:
        super().__init__(logging.INFO)
        self.dagster_log = dagster_log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.dagster_log.log(record.levelno, record.getMessage())
        except Exception:  # a log line must never fail the step
            self.handleError(record)


@contextmanager
def library_stage(context: dg.AssetExecutionContext | None, *errors: type[Exception]) -> Iterator[None]:
    """Run a library stage inside a step: its log records go to the step's Dagster log (as ``context.log`` calls
    did when the logic lived in the asset), and a missing upstream output, a training's writer lock held by another
    live process (or one of ``errors``) fails the step with the library's one paragraph (what, which file or
    holder, the fix) as its description."""
    logger = logging.getLogger(LIBRARY_LOGGER)
    handler, level = _ToDagsterLog(context.log) if context is not None else None, logger.level
    if handler is not None:
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
    try:
        yield
    except (MissingUpstreamError, RunLockedError, *errors) as exc:
        raise dg.Failure(description=str(exc)) from None
    finally:
        if handler is not None:
            logger.removeHandler(handler)
            logger.setLevel(level)


def run_hooks(context: dg.AssetExecutionContext, mlflow: MlflowResource) -> RunHooks:
    """A training stage's runs tagged with this Dagster run and linked to the resource's MLflow UI; the Dagster runs
    of killed attempts of the same training (still ``STARTED`` in this instance) are reported failed."""

    def fail_killed_dagster_runs(orphans: list[dict[str, str]], resume_step: int, run_id: str) -> None:
        for orphan in orphans:
            dagster_run_id = orphan.get("dagster.run_id")
            if not dagster_run_id or dagster_run_id == context.run_id:
                continue
            dagster_run = context.instance.get_run_by_id(dagster_run_id)
            if dagster_run is not None and dagster_run.status in (
                dg.DagsterRunStatus.STARTED,
                dg.DagsterRunStatus.STARTING,
            ):
                context.instance.report_run_failed(
                    dagster_run,
                    message=f"killed: its training process is gone; run {context.run_id} resumed it from step "
                    f"{resume_step} (MLflow run {orphan['run_id']} marked KILLED)",
                )
                context.log.warning(
                    "Dagster run %s was left STARTED by a killed process: marked failed", dagster_run_id
                )

    return RunHooks(
        tags={"dagster.run_id": context.run_id}, on_orphans=fail_killed_dagster_runs, mlflow_ui=mlflow.ui_url
    )
