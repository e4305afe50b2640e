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


try:  # the pyfunc base class is only needed where models are logged
    from mlflow.pyfunc import PythonModel as _PythonModel
except ImportError:  # pragma: no cover - mlflow is a dependency
    _PythonModel = object


class ReasoningLM(_PythonModel):
    """The trained LM as an MLflow pyfunc: chat prompts in, greedy completions out.

    The weights are an artifact (``model``) of the logged model, a plain Hugging Face folder, so
    ``mlflow.artifacts.download_artifacts`` gives back exactly what was trained.
    (MLflow's transformers flavor does not yet support transformers 5, hence pyfunc.)
    """

    def load_context(self, context) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = context.artifacts["model"]
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path).eval()

    def predict(self, context, model_input: list[list[dict[str, str]]], params=None) -> list[str]:
        import torch

        max_new_tokens = int(context.model_config.get("max_new_tokens", 512)) if context else 512
        outputs = []
        for messages in list(model_input):
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
            ids = ids["input_ids"] if hasattr(ids, "keys") else ids
            with torch.no_grad():
                out = self.model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False)
            outputs.append(self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
        return outputs


def log_and_register_lm(
    model_dir: Path, registered_name: str, run_id: str, *, max_new_tokens: int = 512
) -> tuple[str, str]:
    """Log ``model_dir`` (a HF folder) into run ``run_id`` and register it; returns (model URI, version)."""
    import mlflow

    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ReasoningLM(),
            artifacts={"model": str(model_dir)},
            model_config={"max_new_tokens": max_new_tokens},
            pip_requirements=_model_requirements(),
        )
    version = mlflow.register_model(info.model_uri, registered_name)
    return info.model_uri, str(version.version)


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
