"""The registered model: the whole chain as an MLflow pyfunc (video + question + options in; answer, think and
provenance out).

A logged version holds two artifacts: ``model``, the trained LM's Hugging Face folder (exactly what was trained),
and ``settings``, the :class:`~embodied_r.inference.chain.InferenceSettings` of the project that trained it (key
frames, perception backend — the API key's environment variable name, never the key —, prompt and decoding). So
``mlflow models serve -m models:/embodied-r-lm@champion --env-manager local`` answers as ``embodied-r ask`` does.

Request rows (``dataframe_records``): ``question`` (text), ``options`` (their texts, in letter order; none: the
question's own ``A. …`` lines, or a numeric question), and the video as either ``video`` — a path on the server's
disk (relative paths against the server's working directory) — or ``video_base64`` — the file's bytes, base64
(with ``video_name`` for its suffix). The oracle backend needs the embedded world's ground truth beside the video's
folder, so it takes paths only; the ``openai`` / ``transformers`` backends take either. Each row answers on its own:
a row the chain cannot answer gets its ``error`` (one paragraph) and the others are answered.
"""

from __future__ import annotations

import base64
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from embodied_r.config import Params
from embodied_r.inference.chain import Chain, InferenceError, InferenceSettings
from embodied_r.layout import Layout

log = logging.getLogger(__name__)

try:  # the pyfunc base class is only needed where models are logged or served
    from mlflow.pyfunc import PythonModel as _PythonModel
except ImportError:  # pragma: no cover - mlflow is a dependency
    _PythonModel = object

#: The fields of one answer in a response, in order.
OUTPUT_FIELDS = ("letter", "text", "think", "completion", "keyframe_indices", "descriptions", "model", "seconds",
                 "provenance", "error")  # fmt: skip


class EmbodiedRChain(_PythonModel):
    """The pyfunc: :class:`~embodied_r.inference.chain.Chain` over the logged LM and settings."""

    def load_context(self, context) -> None:
        settings = InferenceSettings.model_validate_json(Path(context.artifacts["settings"]).read_text("utf-8"))
        self.provenance = dict(context.model_config or {})
        version = _registered_version(self.provenance)
        if version is not None:  # logged before it was registered: the registry knows its number
            self.provenance.update(version=version, label=f"{self.provenance['registered_model']} v{version}")
        work = Path(tempfile.mkdtemp(prefix="embodied-r-serve-"))  # key frames and perception cache of this process
        self.chain = Chain(
            settings,
            Path(context.artifacts["model"]),
            label=self.provenance.get("label", "embodied-r chain"),
            work_dir=work / "keyframes",
            cache_dir=work / "perception",
        )
        self.uploads = work / "uploads"

    def predict(self, context, model_input, params=None) -> list[dict[str, Any]]:
        """One answer (:data:`OUTPUT_FIELDS`) per request row."""
        rows = model_input.to_dict(orient="records") if hasattr(model_input, "to_dict") else list(model_input)
        return [self._answer_row(i, row) for i, row in enumerate(rows)]

    def _answer_row(self, i: int, row: dict[str, Any]) -> dict[str, Any]:
        try:
            video = self._video(i, row)
            options = row.get("options")
            options = [] if options is None else [str(o) for o in list(options)]
            answer = self.chain.answer(video, str(row.get("question") or ""), options)
        except InferenceError as exc:
            log.warning("request row %d: %s", i, exc)
            return {**dict.fromkeys(OUTPUT_FIELDS), "provenance": self.provenance, "error": str(exc)}
        out = answer.to_dict()
        return {**{k: out.get(k) for k in OUTPUT_FIELDS}, "provenance": self.provenance, "error": None}

    def _video(self, i: int, row: dict[str, Any]) -> Path:
        path, data = _present(row.get("video")), _present(row.get("video_base64"))
        if path:
            return Path(path)
        if data:
            suffix = Path(_present(row.get("video_name")) or "video.mp4").suffix or ".mp4"
            target = self.uploads / f"row{i}{suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                target.write_bytes(base64.b64decode(data, validate=True))
            except ValueError as exc:
                raise InferenceError(f"request row {i}: video_base64 is not base64 ({exc})") from None
            return target
        raise InferenceError(f"request row {i}: no video: give `video` (a path on the server) or `video_base64`")


def _registered_version(provenance: dict[str, Any]) -> str | None:
    """The registry's version of the model logged in ``provenance``'s run (``None``: unknown, or not one version)."""
    name, run_id = provenance.get("registered_model"), provenance.get("run_id")
    if not name or not run_id:
        return None
    try:
        import mlflow

        versions = mlflow.MlflowClient().search_model_versions(f"name='{name}' and run_id='{run_id}'")
    except Exception as exc:  # a served copy without its registry still answers, named by its run
        log.info("no registry version for run %s: %s", run_id, exc)
        return None
    return str(versions[0].version) if len(versions) == 1 else None


def _present(value: Any) -> str | None:
    """A request field's text, ``None`` when missing (pandas fills absent columns with NaN/None)."""
    return value if isinstance(value, str) and value.strip() else None


def signature() -> Any:
    """The model signature: the request columns and the answer fields."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Map, Schema

    inputs = Schema([
        ColSpec("string", "question"),
        ColSpec(Array("string"), "options", required=False),
        ColSpec("string", "video", required=False),
        ColSpec("string", "video_base64", required=False),
        ColSpec("string", "video_name", required=False),
    ])  # fmt: skip
    outputs = Schema([
        ColSpec("string", "letter", required=False),
        ColSpec("string", "text", required=False),
        ColSpec("string", "think", required=False),
        ColSpec("string", "completion", required=False),
        ColSpec(Array("long"), "keyframe_indices", required=False),
        ColSpec(Array("string"), "descriptions", required=False),
        ColSpec("string", "model", required=False),
        ColSpec(Map("double"), "seconds", required=False),
        ColSpec(Map("string"), "provenance", required=False),
        ColSpec("string", "error", required=False),
    ])  # fmt: skip
    return ModelSignature(inputs=inputs, outputs=outputs)


def write_settings(settings: InferenceSettings, folder: Path) -> Path:
    """``settings.json`` in ``folder``: the artifact the served model reads its settings from."""
    path = Path(folder) / "settings.json"
    path.write_text(json.dumps(settings.model_dump(mode="json"), indent=2, sort_keys=True) + "\n", "utf-8")
    return path


def example_request(layout: Layout) -> dict[str, Any] | None:
    """A request about the dataset's first test question (the signature's input example), or ``None``.

    The video path is relative to the project root (where ``mlflow models serve`` is started), never absolute.
    """
    from embodied_r.data.ingest import read_videos
    from embodied_r.data.records import read_records

    if not layout.records.is_file():
        return None
    records = [r for r in read_records(layout.records) if r.split == "test" and r.choices]
    if not records:
        return None
    record = records[0]
    video = Path(read_videos(layout.raw)[record.video_id]["path"])
    try:
        video = video.relative_to(layout.root.resolve())
    except ValueError:
        return None  # a video outside the project: its path would be this machine's
    choice_lines = {f"{letter}. {text}" for letter, text in record.choices.items()}
    stem = "\n".join(line for line in record.question.splitlines() if line not in choice_lines)
    options = [record.choices[letter] for letter in sorted(record.choices)]
    return {"video": video.as_posix(), "question": stem, "options": options}


def registration(params: Params, layout: Layout, run_id: str) -> dict[str, Any]:
    """The keyword arguments of :func:`embodied_r.tracking.log_and_register_lm` for a model of this project:
    its chain settings, an input example and the model card written at registration."""
    from embodied_r.inference.card import write_model_card

    def card(client: Any, version: str) -> None:
        write_model_card(client, params, layout, version=version, run_id=run_id, results=None)

    return {"settings": InferenceSettings.from_params(params), "input_example": example_request(layout), "card": card}


__all__ = ["OUTPUT_FIELDS", "EmbodiedRChain", "example_request", "registration", "signature", "write_settings"]
