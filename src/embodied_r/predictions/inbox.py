"""The inbox: a folder of new videos and one questions file about them, in the official Embodied-R JSON format.

``<inbox>/<name>.mp4`` (any of :data:`~embodied_r.data.adapters.VIDEO_EXTENSIONS`, top level only) is the video
``<name>``. ``<inbox>/questions.json`` (``predictions.questions_file``) is what ingest reads for
``data.source: official`` — a JSON list of ``{Question_id, video_id, question_category, question, answer}`` with
the question's lettered choice lines — except that ``answer`` and ``question_category`` may be left out: these are
questions nobody has answered yet. When an answer is given, the prediction records whether it matched.

A row is read with the official adapter's own field rules (:func:`~embodied_r.data.adapters.common._text_field`,
:func:`~embodied_r.data.records.parse_choices`, :func:`~embodied_r.data.adapters.normalize_answer_letter`); a
bad row never stops the others: it becomes a problem of its video (an error row in that video's predictions). A
bad *file* (not JSON, not a list) is one :class:`InboxError` naming it and the fix.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embodied_r.data.adapters import VIDEO_EXTENSIONS, DatasetFormatError, normalize_answer_letter
from embodied_r.data.adapters.common import _Excluded, _text_field
from embodied_r.data.records import dumps_canonical, parse_choices
from embodied_r.vocabulary import CHOICE_LINE_RE

log = logging.getLogger(__name__)


class InboxError(DatasetFormatError):
    """The inbox's questions file cannot be read; the message names it and the fix."""


@dataclass(frozen=True)
class InboxVideo:
    """A video file of the inbox; ``size`` and ``mtime_ns`` tell a replaced file from the one already answered."""

    video_id: str
    path: Path
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class InboxQuestion:
    """One question of the questions file: its stem, its options in letter order, and the answer when known."""

    question_id: str
    video_id: str
    stem: str
    choices: dict[str, str]
    category: str | None = None
    answer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The question as a prediction row shows it."""
        return {
            "question_id": self.question_id,
            "question": self.stem,
            "choices": self.choices,
            "category": self.category,
            "expected": self.answer,
        }


@dataclass
class Inbox:
    """What the inbox holds: its videos, their questions, and the rows that could not be read (by video)."""

    folder: Path
    questions_file: Path
    videos: dict[str, InboxVideo] = field(default_factory=dict)
    questions: dict[str, list[InboxQuestion]] = field(default_factory=dict)
    #: video id → ``[{"question_id", "error"}]`` for rows of that video that could not be read.
    problems: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    #: Files that look like videos but cannot be told apart (two files, one name): left out, with why.
    ambiguous: dict[str, str] = field(default_factory=dict)

    def fingerprint(self, video_id: str) -> str:
        """What changes when the video's answers must be made again: its file (size, time) and its questions."""
        video = self.videos[video_id]
        rows = [q.__dict__ for q in self.questions.get(video_id, [])] + self.problems.get(video_id, [])
        digest = hashlib.sha256(dumps_canonical(rows).encode()).hexdigest()[:12]
        return f"{video.size}-{video.mtime_ns}-{digest}"


def video_id_of(name: str) -> str:
    """The inbox video a questions row's ``video_id`` names: ``clip`` and ``clip.mp4`` are both ``clip``."""
    path = Path(name)
    return path.stem if path.suffix.lower() in VIDEO_EXTENSIONS else name


def list_videos(folder: Path) -> tuple[dict[str, InboxVideo], dict[str, str]]:
    """The inbox's video files by id (file name without extension), and the ids two files claim (left out)."""
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith("."):
            found.setdefault(path.stem, []).append(path)
    videos, ambiguous = {}, {}
    for video_id, paths in found.items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            ambiguous[video_id] = f"{names} in {folder} are all video {video_id!r}: rename or remove all but one"
            continue
        st = paths[0].stat()
        videos[video_id] = InboxVideo(video_id, paths[0], st.st_size, st.st_mtime_ns)
    return videos, ambiguous


def _stem(question: str) -> str:
    """The question without its lettered choice lines."""
    return "\n".join(line for line in question.splitlines() if not CHOICE_LINE_RE.match(line)).strip()


def _read_row(row: Mapping[str, Any]) -> InboxQuestion:
    question_id = _text_field(row, "Question_id")
    video_id = video_id_of(_text_field(row, "video_id"))
    question = _text_field(row, "question")
    choices = parse_choices(question)
    if not choices:
        raise _Excluded("invalid_record", "question text has no lettered choice lines (A. …)")
    answer = None
    if row.get("answer") not in (None, ""):
        answer = normalize_answer_letter(row["answer"], choices)
        if answer is None:
            raise _Excluded("answer_not_in_choices", f"answer {row['answer']!r} is not among choices {sorted(choices)}")
    category = _text_field(row, "question_category") if row.get("question_category") else None
    return InboxQuestion(question_id, video_id, _stem(question), choices, category, answer)


def read_questions(path: Path) -> tuple[dict[str, list[InboxQuestion]], dict[str, list[dict[str, str]]]]:
    """The questions file's rows by video id, and the rows of each video that could not be read.

    A missing file is no question yet (videos often arrive first). Raises :class:`InboxError` for a file that is
    not a JSON list.
    """
    if not path.is_file():
        return {}, {}
    fix = "a JSON list of objects with Question_id, video_id and question (the question then its A. B. … lines)"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InboxError(f"{path}: not valid JSON ({exc}); the questions file must be {fix}") from None
    if not isinstance(data, list):
        raise InboxError(f"{path}: top level is a {type(data).__name__}; the questions file must be {fix}")
    questions: dict[str, list[InboxQuestion]] = {}
    problems: dict[str, list[dict[str, str]]] = {}
    seen: set[str] = set()
    for index, row in enumerate(data):
        where = f"{path.name} row {index}"
        video = video_id_of(str(row.get("video_id") or "")) if isinstance(row, Mapping) else ""
        try:
            if not isinstance(row, Mapping):
                raise _Excluded("invalid_record", f"entry is a {type(row).__name__}, not an object")
            question = _read_row(row)
            if question.question_id in seen:
                raise _Excluded("duplicate_id", f"question id {question.question_id!r} is used by an earlier row")
            seen.add(question.question_id)
            questions.setdefault(question.video_id, []).append(question)
        except _Excluded as exc:
            qid = str(row.get("Question_id") or where) if isinstance(row, Mapping) else where
            message = f"{where} ({qid}): {exc.reason}: {exc.detail}; fix the row in {path}"
            log.warning("%s", message)
            problems.setdefault(video, []).append({"question_id": qid, "error": message})
    return questions, problems


def read_inbox(folder: Path, questions_file: str) -> Inbox:
    """The inbox ``folder``: its videos and the questions of ``folder / questions_file``."""
    folder = Path(folder)
    videos, ambiguous = list_videos(folder)
    questions, problems = read_questions(folder / questions_file)
    return Inbox(folder, folder / questions_file, videos, questions, problems, ambiguous)
