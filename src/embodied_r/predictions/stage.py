"""The ``predictions`` stage: every question the inbox holds about one video, answered by the registered model.

Writes ``<data_dir>/predictions/<video_id>.jsonl`` (atomically: a reader sees the old file or the new one), one
row per question in the questions file's order: the question, the answer (letter and text), the ``<think>``, the
whole completion, the key frames and their descriptions, the model version, seconds per stage — or, for a
question that could not be answered, its ``error`` (the rest go on). A video that cannot be used (unreadable,
too short: the key-frame stage's own rule) is one :class:`BadVideoError` naming the file and the fix.

The model is ``predictions.model`` of ``tracking.registered_model`` (the ``champion`` alias by default), resolved
to its version once per stage call and loaded by version, so every row names exactly the version that answered.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embodied_r.config import Params
from embodied_r.data.adapters import VIDEO_EXTENSIONS
from embodied_r.data.records import write_jsonl
from embodied_r.errors import UserError
from embodied_r.layout import Layout
from embodied_r.predictions.inbox import Inbox, read_inbox

log = logging.getLogger(__name__)

#: The answer distribution's name for a completion no option could be read from.
NO_ANSWER = "none read"
#: The chain's stages, as :class:`embodied_r.inference.Answer` times them.
STAGES = ("keyframes", "perception", "prompt", "generation")


class ModelNotFoundError(UserError, LookupError):
    """``predictions.model`` names no version of the registered model."""


class BadVideoError(UserError, ValueError):
    """An inbox video cannot be answered about (unreadable, too short, not in the inbox, no question about it)."""


@dataclass
class PredictionsOutcome:
    """One video's predictions: where they are and what the asset's metadata shows."""

    video_id: str
    path: Path
    model: str
    model_version: str
    questions: int
    answered: int
    errors: int
    answer_distribution: dict[str, int]
    seconds: float
    #: Seconds spent in each stage of the chain over the video's questions (the model's load: once per call).
    stage_seconds: dict[str, float] = field(default_factory=dict)
    accuracy: float | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)


def inbox_folder(params: Params, root: Path) -> Path:
    """``predictions.inbox``, relative to the project ``root`` unless absolute."""
    path = Path(params.predictions.inbox).expanduser()
    return path if path.is_absolute() else Path(root) / path


def resolve_model_version(params: Params, root: Path) -> str:
    """The version ``predictions.model`` names now (an alias resolved in the registry, or a version number).

    Raises :class:`ModelNotFoundError` naming the alias or version and how to get one.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from embodied_r.tracking import configure_tracking

    configure_tracking(params.tracking, Path(root))
    name, wanted = params.tracking.registered_model, params.predictions.model
    client = MlflowClient()
    try:
        if wanted.isdigit():
            return str(client.get_model_version(name, wanted).version)
        return str(client.get_model_version_by_alias(name, wanted).version)
    except MlflowException:
        what = f"version {wanted}" if wanted.isdigit() else f"the alias {wanted!r}"
        raise ModelNotFoundError(
            f"the registered model {name!r} has no {what} (predictions.model in params.yaml): materialize "
            "evaluation_results, which registers the GRPO model and makes it champion when it passes the promotion "
            "rule, or `embodied-r registry promote VERSION`; or set predictions.model to an existing version"
        ) from None


def model_uri(params: Params, version: str) -> str:
    """The MLflow URI of ``version`` of the registered model: ``models:/<name>/<version>``."""
    return f"models:/{params.tracking.registered_model}/{version}"


def _portable(text: str, root: Path) -> str:
    """``text`` without the machine's project path (rows are a DVC output: no absolute paths)."""
    return text.replace(f"{Path(root).resolve()}{os.sep}", "").replace(f"{root}{os.sep}", "")


def predict_video(params: Params, layout: Layout, video_id: str, asker: Any, inbox: Inbox | None = None,
                  *, version: str = "") -> PredictionsOutcome:  # fmt: skip
    """Answer every inbox question about ``video_id`` with ``asker`` (an :class:`embodied_r.inference.Asker`),
    write its JSONL and return what it holds. ``inbox``: the inbox already read (read here when ``None``).

    Raises :class:`BadVideoError` when the video is not in the inbox, cannot be used, or has no question, and
    when no question at all could be answered (the rows, with each error, are written first).
    """
    from embodied_r.keyframes import keyframe_refusal

    inbox = inbox or read_inbox(inbox_folder(params, layout.root), params.predictions.questions_file)
    video = inbox.videos.get(video_id)
    if video is None:
        files = f"no video file {video_id}.* ({', '.join(VIDEO_EXTENSIONS)}) in {inbox.folder}"
        why = inbox.ambiguous.get(video_id, files)
        raise BadVideoError(f"inbox video {video_id!r}: {why}")
    questions = inbox.questions.get(video_id, [])
    problems = inbox.problems.get(video_id, [])
    if not questions and not problems:
        raise BadVideoError(
            f"inbox video {video_id!r} ({video.path.name}) has no question in {inbox.questions_file}: add rows with "
            f'"video_id": "{video_id}" (Question_id, video_id, question with its A. B. ... lines)'
        )
    problem = keyframe_refusal(video.path, params.keyframes)
    if problem is not None:  # the key-frame stage's own rule and message (what is wrong, how to fix the file)
        raise BadVideoError(
            f"inbox video {video_id!r} cannot be used ({problem.reason}): {problem} A replaced file is answered "
            f"again; or remove it and its questions from {inbox.folder}"
        )
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for question in questions:
        row = {"video_id": video_id, "video": video.path.name, **question.to_dict()}
        try:
            answer = asker.ask(video.path, question.stem, [question.choices[k] for k in sorted(question.choices)])
        except Exception as exc:  # one question's failure is its row; the others go on
            log.warning("video %s, question %s: %s", video_id, question.question_id, exc, exc_info=True)
            rows.append({**row, "error": _portable(str(exc), layout.root)})
            continue
        result = answer.to_dict()
        letter, text = result.pop("letter"), result.pop("text")  # named as a prediction row names them
        rows.append({**row, **result, "answer": letter, "answer_text": text})
        if question.answer is not None:
            rows[-1]["correct"] = rows[-1]["answer"] == question.answer
    rows += [{"video_id": video_id, "video": video.path.name, **p, "error": _portable(p["error"], layout.root)}
             for p in problems]  # fmt: skip
    seconds = time.perf_counter() - start
    path = layout.predictions / f"{video_id}.jsonl"
    write_jsonl(path, rows)  # atomic: a killed run leaves the old file or the new one
    answered = [r for r in rows if "error" not in r]
    scored = [r["correct"] for r in answered if "correct" in r]
    outcome = PredictionsOutcome(
        video_id=video_id,
        path=path,
        model=asker.model,
        model_version=version,
        questions=len(rows),
        answered=len(answered),
        errors=len(rows) - len(answered),
        answer_distribution=dict(sorted(Counter(r["answer"] or NO_ANSWER for r in answered).items())),
        stage_seconds={k: round(sum(r["seconds"].get(k, 0.0) for r in answered), 3) for k in STAGES},
        seconds=round(seconds, 3),
        accuracy=sum(scored) / len(scored) if scored else None,
        rows=rows,
    )
    log.info("video %s: %d of %d questions answered in %.1f s (%s)", video_id, outcome.answered,
             outcome.questions, seconds, outcome.model)  # fmt: skip
    if not answered:
        first = next(r["error"] for r in rows)
        raise BadVideoError(
            f"inbox video {video_id!r}: none of its {len(rows)} questions could be answered (see {path}); "
            f"the first: {first}"
        )
    return outcome


@dataclass
class PredictionsRun:
    """The videos a stage call answered, those it could not (video id → the message), and the model version."""

    version: str
    outcomes: dict[str, PredictionsOutcome] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def predict_videos(params: Params, layout: Layout, video_ids: Iterable[str]) -> PredictionsRun:
    """:func:`predict_video` for each of ``video_ids`` with one loaded model (``predictions.model``, resolved to
    its version once); a video that fails is recorded in ``failures`` and the others go on."""
    from embodied_r.inference import Asker

    version = resolve_model_version(params, layout.root)
    asker = Asker(params, layout.root, model_uri(params, version))
    inbox = read_inbox(inbox_folder(params, layout.root), params.predictions.questions_file)
    run = PredictionsRun(version)
    for video_id in video_ids:
        try:
            run.outcomes[video_id] = predict_video(params, layout, video_id, asker, inbox, version=version)
        except UserError as exc:  # reported by the caller (the asset fails naming each video), the rest go on
            run.failures[video_id] = str(exc)
    return run
