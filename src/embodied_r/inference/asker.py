"""Ask a trained model of the project a question about a video (``embodied-r ask``, batch predictions).

:class:`Asker` resolves a model — ``models:/<name>@<alias>`` or ``models:/<name>/<version>`` in the project's
registry, a ``runs:/<run id>/model`` URI, or a local Hugging Face folder —, loads it once and answers with the
project's settings (``params.yaml``: the configured perception backend, the prompt and the decoding evaluation
uses). Registered weights are downloaded once into ``.cache/inference/models/``; key frames go to
``.cache/inference/keyframes/``, descriptions to the perception cache, so asking again costs only the LM.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from embodied_r.config import Params
from embodied_r.inference.chain import Answer, Chain, InferenceError, InferenceSettings
from embodied_r.layout import Layout

log = logging.getLogger(__name__)

#: ``models:/name@alias`` or ``models:/name/3``.
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


class Asker:
    """Answers questions about videos with one model of the project (see the module docstring)."""

    def __init__(self, params: Params, root: Path, model: str) -> None:
        """``model``: ``"models:/name@champion"``, a ``runs:/`` URI or a local Hugging Face folder. An unknown alias,
        version or run, or a folder that is not a model, is an :class:`InferenceError` naming the fix."""
        self.params = params
        self.root = Path(root).resolve()
        self.layout = Layout(self.root, params.data_dir)
        self.cache = self.root / ".cache" / "inference"
        model_dir, label = resolve_model(params, self.root, model, self.cache / "models")
        self.chain = Chain(
            InferenceSettings.from_params(params),
            model_dir,
            label=label,
            work_dir=self.cache / "keyframes",
            cache_dir=self.root / params.perception.cache_dir,
            ground_truth_roots=[self.layout.raw / "ground_truth"],
            video_ids=_known_videos(self.layout),
        )

    @property
    def model(self) -> str:
        """How answers name the model (``name vN`` for a registered version)."""
        return self.chain.label

    def ask(self, video: Path, question: str, options: Sequence[str]) -> Answer:
        """Answer ``question`` (lettered ``options`` A, B, … in order) about ``video``; ``seconds["load"]`` is the
        model's load time (spent once, at construction)."""
        answer = self.chain.answer(Path(video), question, options)
        answer.seconds["load"] = round(self.chain.load_seconds, 3)
        return answer


def _known_videos(layout: Layout) -> dict[str, str]:
    """sha256 → id of the dataset's videos (``raw_videos``' ``videos.json``), when the project has ingested one."""
    path = layout.raw / "videos.json"
    if not path.is_file():
        return {}
    return {entry["sha256"]: video_id for video_id, entry in json.loads(path.read_text("utf-8")).items()}


def _is_hf_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def resolve_model(params: Params, root: Path, model: str, downloads: Path) -> tuple[Path, str]:
    """``(Hugging Face folder, label)`` of ``model`` (see :class:`Asker`); registered weights are downloaded once."""
    local = Path(model).expanduser()
    if not model.startswith(("models:/", "runs:/")):
        if _is_hf_folder(local):
            return local.resolve(), local.resolve().name
        raise InferenceError(
            f"--model {model!r} is neither a registry URI (models:/{params.tracking.registered_model}@champion, "
            "models:/NAME/VERSION, runs:/RUN_ID/model) nor a Hugging Face model folder (one with config.json)"
        )
    import mlflow
    from mlflow.exceptions import MlflowException

    from embodied_r.tracking import configure_tracking

    configure_tracking(params.tracking, root)
    client = mlflow.MlflowClient()
    if model.startswith("models:/"):
        match = _MODELS_URI.match(model)
        if match is None:
            raise InferenceError(f"--model {model!r}: write models:/NAME@ALIAS or models:/NAME/VERSION")
        name = match["name"]
        try:
            if match["alias"]:
                version = client.get_model_version_by_alias(name, match["alias"])
            else:
                version = client.get_model_version(name, match["version"])
        except MlflowException:
            raise InferenceError(_unknown_model_text(client, model, name)) from None
        label = f"{name} v{version.version}"
        target = downloads / f"{name}-v{version.version}"
        uri = f"models:/{name}/{version.version}"
    else:
        run_id = model.removeprefix("runs:/").split("/")[0]
        label = f"run {run_id}"
        target = downloads / f"run-{run_id}"
        uri = model
    folder = _downloaded(uri, target, model)
    return folder, label


def _unknown_model_text(client, model: str, name: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        versions = sorted(client.search_model_versions(f"name='{name}'"), key=lambda mv: int(mv.version))
    except MlflowException:
        versions = []
    if not versions:
        return (
            f"--model {model}: no registered versions of {name!r} in the project's MLflow registry; "
            "train one (`embodied-r materialize grpo_lm`, or `dvc repro`) or give a model folder with --model"
        )
    try:
        aliases = sorted(client.get_registered_model(name).aliases)
    except MlflowException:
        aliases = []
    known = ", ".join(f"v{mv.version}" for mv in versions)
    return (
        f"--model {model}: no such version or alias of {name!r} (versions {known}; aliases "
        f"{', '.join(aliases) or 'none'}); the champion is set by evaluation_results or `embodied-r registry promote`"
    )


def _weights_folder(logged: Path) -> Path | None:
    """The Hugging Face folder of a logged model: its pyfunc artifact ``model`` (named by MLflow after the folder
    it was logged from), as its ``MLmodel`` file records it."""
    import yaml

    mlmodel = logged / "MLmodel"
    if not mlmodel.is_file():
        return None
    flavor = (yaml.safe_load(mlmodel.read_text("utf-8")) or {}).get("flavors", {}).get("python_function", {})
    path = (flavor.get("artifacts") or {}).get("model", {}).get("path")
    return logged / path if path and _is_hf_folder(logged / path) else None


def _downloaded(uri: str, target: Path, model: str) -> Path:
    """The Hugging Face folder of the logged model at ``uri``, downloaded into ``target`` unless already there."""
    import mlflow
    from mlflow.exceptions import MlflowException

    folder = _weights_folder(target)
    if folder is not None:
        return folder
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(partial))
    except (MlflowException, OSError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise InferenceError(f"--model {model}: its files could not be read from the MLflow store: {exc}") from None
    if _weights_folder(partial) is None:
        shutil.rmtree(partial, ignore_errors=True)
        raise InferenceError(f"--model {model}: not a model logged by the grpo_lm stage (no weights artifact `model`)")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)  # complete, or not there: an interrupted download is never taken for a model
    return _weights_folder(target)


__all__ = ["Asker", "resolve_model"]
