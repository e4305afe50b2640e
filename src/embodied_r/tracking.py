"""MLflow tracking: one sqlite store and artifact folder per project.

MLflow 3 needs an explicit opt-in for the file store, so the project uses sqlite
(``sqlite:///mlruns/mlflow.db``) with artifacts under ``mlruns/artifacts``. Relative
paths are resolved against the project root, so runs land in the same store whatever the
working directory of the process that logs them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def create_run(
    cfg: TrackingConfig,
    root: Path,
    run_name: str,
    tags: dict[str, str],
    params: dict,
    ui: str = "http://127.0.0.1:5000",
) -> tuple[str, str]:
    """A new run in the project's experiment with ``tags`` (and the git commit) and the flattened ``params``.

    Returns (run id, UI URL). How a training stage opens its run (:class:`embodied_r.training.stage.RunHooks`).
    """
    import mlflow
    from mlflow.entities import Param

    from embodied_r.evaluation.report import git_commit

    experiment_id = configure_tracking(cfg, root)
    client = mlflow.MlflowClient()
    commit = git_commit(root)["commit"] or "unknown"
    run = client.create_run(experiment_id, run_name=run_name, tags={**tags, "git.commit": commit})
    flat = sorted(flatten_params({"params": params}).items())
    for start in range(0, len(flat), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in flat[start : start + 100]])
    return run.info.run_id, run_url(experiment_id, run.info.run_id, ui)


#: Tags linking a resumed training's run and the run of the killed attempt it continues.
RESUMES_RUN_TAG = "embodied_r.resumes_run"
RESUMED_BY_TAG = "embodied_r.resumed_by"
RESUME_STEP_TAG = "embodied_r.resume_step"


def adopt_orphan_runs(run_id: str, match_tags: dict[str, str], resume_step: int) -> list[dict[str, str]]:
    """Close the runs a killed training left ``RUNNING`` and continue their curve in ``run_id``.

    The orphans are the other runs of ``run_id``'s experiment still ``RUNNING`` with every tag of ``match_tags``
    (the stage and its training key). Only the holder of the training's writer lock may call this
    (:func:`embodied_r.training.checkpoints.run_lock`): a run of the same training is then one whose process is
    gone. Each orphan is marked ``KILLED`` and tagged ``embodied_r.resumed_by``; ``run_id`` is tagged
    ``embodied_r.resumes_run`` (the orphans' ids) and ``embodied_r.resume_step``. The newest orphan's metric points
    up to ``resume_step`` (the checkpoint the training resumes from) are copied into ``run_id``, which logs the
    steps after it: one run holds the whole curve, without the steps the kill threw away. Returns the orphans'
    ids and tags, newest first.
    """
    import mlflow
    from mlflow.entities import Metric

    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    query = " and ".join([*(f"tags.`{k}` = '{v}'" for k, v in match_tags.items()), "attributes.status = 'RUNNING'"])
    found = client.search_runs([run.info.experiment_id], query, order_by=["attributes.start_time DESC"])
    orphans = [r for r in found if r.info.run_id != run_id]
    if not orphans:
        return []
    newest = orphans[0]
    points = [
        Metric(m.key, m.value, m.timestamp, m.step)
        for key in newest.data.metrics
        for m in client.get_metric_history(newest.info.run_id, key)
        if m.step <= resume_step
    ]
    for start in range(0, len(points), 1000):  # MLflow takes at most 1000 metrics per batch
        client.log_batch(run_id, metrics=points[start : start + 1000])
    for orphan in orphans:
        client.set_tag(orphan.info.run_id, RESUMED_BY_TAG, run_id)
        client.set_terminated(orphan.info.run_id, status="KILLED")
        log.warning(
            "MLflow run %s was left RUNNING by a killed training: marked KILLED; run %s continues it from step %d",
            orphan.info.run_id,
            run_id,
            resume_step,
        )
    client.set_tag(run_id, RESUMES_RUN_TAG, ",".join(o.info.run_id for o in orphans))
    client.set_tag(run_id, RESUME_STEP_TAG, str(resume_step))
    return [{"run_id": o.info.run_id, **o.data.tags} for o in orphans]


def log_and_register_lm(
    model_dir: Path,
    registered_name: str,
    run_id: str,
    *,
    settings: Any,
    input_example: dict | None = None,
    card: Callable[[Any, str], None] | None = None,
) -> tuple[str, str]:
    """Log the whole chain over ``model_dir`` (a HF folder) into run ``run_id`` and register it.

    The logged model is :class:`embodied_r.inference.pyfunc.EmbodiedRChain`: the weights (artifact ``model``)
    and ``settings`` (:class:`~embodied_r.inference.chain.InferenceSettings`, artifact ``settings``) with a
    signature and ``input_example`` (a request). ``card(client, version)`` writes the new version's description.
    Returns (model URI, version).
    """
    import tempfile

    import mlflow

    from embodied_r.inference.pyfunc import EmbodiedRChain, signature, write_settings

    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=EmbodiedRChain(),
            artifacts={"model": str(model_dir), "settings": str(write_settings(settings, Path(tmp)))},
            model_config={
                "registered_model": registered_name,
                "run_id": run_id,
                "label": f"{registered_name} (MLflow run {run_id})",
            },
            signature=signature(),
            input_example=input_example,
            pip_requirements=_model_requirements(),
        )
    version = str(mlflow.register_model(info.model_uri, registered_name).version)
    if card is not None:
        card(mlflow.MlflowClient(), version)
    return info.model_uri, version


def _model_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("torch", "transformers", "mlflow")]


def flatten_params(data: dict, prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` → ``{"a.b": "1"}``, for MLflow params (values as short strings)."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_params(value, f"{name}."))
        else:
            flat[name] = str(value)[:500]
    return flat
