"""MLflow tracking: one sqlite store and artifact folder per project.

MLflow 3 needs an explicit opt-in for the file store, so the project uses sqlite
(``sqlite:///mlruns/mlflow.db``) with artifacts under ``mlruns/artifacts``. Relative
paths are resolved against the project root, so runs land in the same store whatever the
working directory of the process that logs them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from embodied_r.config import TrackingConfig

log = logging.getLogger(__name__)

_SQLITE = "sqlite:///"


def resolve_tracking_uri(uri: str, root: Path) -> str:
    """Make a relative ``sqlite:///path`` absolute against ``root``; other URIs pass through.

    >>> resolve_tracking_uri("sqlite:///mlruns/mlflow.db", Path("/p"))
    'sqlite:////p/mlruns/mlflow.db'
    """
    if uri.startswith(_SQLITE) and not uri.startswith(_SQLITE + "/"):
        return _SQLITE + str((root / uri[len(_SQLITE) :]).resolve())
    return uri


def configure_tracking(cfg: TrackingConfig, root: Path) -> str:
    """Point MLflow at the project's store and make sure the experiment exists.

    Returns the experiment id. The sqlite file's folder is created when missing.
    """
    import mlflow

    uri = resolve_tracking_uri(cfg.tracking_uri, root)
    if uri.startswith(_SQLITE):
        Path(uri[len(_SQLITE) :]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.get_experiment_by_name(cfg.experiment)
    if experiment is not None:
        return experiment.experiment_id
    artifacts = (root / cfg.artifact_root).resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    log.info("creating MLflow experiment %r (artifacts in %s)", cfg.experiment, artifacts)
    return mlflow.create_experiment(cfg.experiment, artifact_location=artifacts.as_uri())


def run_url(experiment_id: str, run_id: str, ui: str = "http://127.0.0.1:5000") -> str:
    """Link to a run in the MLflow UI started by ``make mlflow-ui``."""
    return f"{ui}/#/experiments/{experiment_id}/runs/{run_id}"
