"""Adapters that turn real benchmark files into :class:`QuestionRecord` rows.

Three sources, one output shape (:class:`DatasetBuild`: records, exclusions, videos):

* :func:`load_official_json` — the official Embodied-R intermediate JSON.
* :func:`load_urbanvideo` — UrbanVideo-Bench ``MCQ.parquet`` + a folder of videos.
* :func:`load_vsibench` — VSI-Bench parquet + per-source video folders or zips.

Bad *records* never stop a build: each one is left out with a short machine-readable
reason (see :data:`EXCLUSION_REASONS`) and a human detail, and the rest goes on. A bad
*file* (not JSON/parquet, wrong top-level shape, a required field or column missing
everywhere) raises :class:`DatasetFormatError`, naming the file, the field and the fix.

Checks, in the order they run for each record: fields present and non-empty
(``invalid_record``), question id not seen before in this file (``duplicate_id``; the
first occurrence owns the id even if it is itself excluded later, so an ambiguous id
never silently picks the second copy), answer among the parsed choices
(``answer_not_in_choices``), video path stays inside the videos folder
(``path_traversal``), video exists (``missing_video``), video opens and has frames
(``unreadable_video``, checked once per file and cached).

Category selection is not done here: every category is kept and the ingest step filters.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import os
import re
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from embodied_r.data.records import DatasetBuild, Exclusion, QuestionRecord, compose_question, parse_choices
from embodied_r.errors import UserError
from embodied_r.vocabulary import (
    LETTERS,
    REL_DIRECTION_LEVELS,
    URBAN_CATEGORIES,
    VSI_CATEGORIES,
    VSI_NUMERIC_CATEGORIES,
    normalize_category,
)

logger = logging.getLogger(__name__)

#: Reasons an adapter leaves a record out (``Exclusion.reason``).
EXCLUSION_REASONS: tuple[str, ...] = (
    "missing_video",
    "unreadable_video",
    "answer_not_in_choices",
    "duplicate_id",
    "path_traversal",
    "invalid_record",
)

#: Extensions tried, in order, for a ``video_id`` given without one.
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv")

#: Prefix put before VSI-Bench question stems so every source's question text reads
#: the same way ("Question: …" then lettered choices), as UrbanVideo and the official JSON do.
QUESTION_PREFIX = "Question: "

OFFICIAL_FIELDS: tuple[str, ...] = ("Question_id", "video_id", "question_category", "question", "answer", "scene_name")
URBANVIDEO_COLUMNS: tuple[str, ...] = ("Question_id", "video_id", "question_category", "question", "answer")
VSIBENCH_COLUMNS: tuple[str, ...] = (
    "id",
    "dataset",
    "scene_name",
    "question_type",
    "question",
    "options",
    "ground_truth",
)

# "A", "A.", "(A)", "A)", "A:", "A. some text", "(A) some text".
_ANSWER_LETTER_RE = re.compile(r"^\(?\s*([A-Ha-h])\s*(?:[\.\):]\s*(.*))?$", re.DOTALL)
# The "A. " prefix of a VSI-Bench option string.
_OPTION_PREFIX_RE = re.compile(r"^\s*\(?([A-H])[\.\):]\s*(.*?)\s*$", re.DOTALL)


class DatasetError(UserError, ValueError):
    """The dataset as a whole cannot be read; the message names the file or folder and the fix."""


class DatasetFormatError(DatasetError):
    """A dataset file is not in the expected format (as opposed to one bad record in it)."""


class ExtractionError(DatasetError):
    """Videos cannot be extracted from a zip into the extraction folder (not writable, full, inside the dataset)."""


class _Excluded(Exception):
    """Internal: a record is left out, with a reason and a detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------------------------------
# Small value helpers
# ---------------------------------------------------------------------------------------


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _text_field(row: Mapping[str, Any], name: str) -> str:
    """A required scalar field as stripped text; ids may be ints in the source files."""
    value = row.get(name)
    if _is_missing(value):
        raise _Excluded("invalid_record", f"field {name!r} is missing or empty")
    if isinstance(value, float) and value.is_integer():
        # pandas turns an integer column with a gap into floats; 12.0 means id 12.
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _Excluded("invalid_record", f"field {name!r} has unexpected type {type(value).__name__}")
    return str(value).strip()


def normalize_answer_letter(answer: Any, choices: Mapping[str, str]) -> str | None:
    """The answer letter for a multiple-choice answer written any common way, else ``None``.

    Accepts ``"B"``, ``"B."``, ``"(B)"``, ``"B)"``, ``"B. text"`` and the bare option
    text (matched case- and whitespace-insensitively). When ``"B. text"`` disagrees with
    choice B's text the letter wins and a warning is logged.

    >>> normalize_answer_letter("(B)", {"A": "left", "B": "right"})
    'B'
    >>> normalize_answer_letter("right", {"A": "left", "B": "right"})
    'B'
    """
    if _is_missing(answer) or not isinstance(answer, str | int):
        return None
    text = str(answer).strip()
    match = _ANSWER_LETTER_RE.match(text)
    if match:
        letter = match.group(1).upper()
        if letter not in choices:
            return None
        rest = (match.group(2) or "").strip()
        if rest and _squash(rest) != _squash(choices[letter]):
            logger.warning("answer %r names letter %s but its text differs from %r", text, letter, choices[letter])
        return letter
    by_text = [letter for letter, choice in choices.items() if _squash(choice) == _squash(text)]
    return by_text[0] if len(by_text) == 1 else None


def _squash(text: str) -> str:
    return " ".join(text.split()).casefold().rstrip(".")


def _numeric_answer(value: Any) -> str:
    """A numeric ground truth as a string, refusing NaN/inf and non-numbers."""
    if _is_missing(value) or isinstance(value, bool):
        raise _Excluded("invalid_record", "numeric answer is missing")
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        raise _Excluded("invalid_record", f"numeric answer {text!r} is not a number") from None
    if not math.isfinite(number):
        raise _Excluded("invalid_record", f"numeric answer {text!r} is not finite")
    return text


def _category_and_level(raw: str) -> tuple[str, str | None]:
    """Project category plus the relative-direction level it was merged from, if any."""
    category = normalize_category(raw)
    snake = re.sub(r"[^0-9a-zA-Z]+", "_", raw.strip()).strip("_").lower()
    for level in REL_DIRECTION_LEVELS:
        if category == "object_rel_direction" and snake == f"object_rel_direction_{level}":
            return category, level
    return category, None


def _data_source_for(category: str) -> str:
    """Which benchmark a category belongs to, or ``"official"`` when it is not clear."""
    if category in VSI_CATEGORIES or category in VSI_NUMERIC_CATEGORIES:
        return "vsibench"
    if category in URBAN_CATEGORIES:
        return "urbanvideo"
    return "official"


# ---------------------------------------------------------------------------------------
# Videos: safe paths, cheap readability check, lazy zip extraction
# ---------------------------------------------------------------------------------------

_VIDEO_CHECK_CACHE: dict[tuple[str, int, int], str | None] = {}


def check_video(path: Path) -> str | None:
    """``None`` if the video opens and has at least one frame, else why not.

    Cheap (OpenCV header + at most one decoded frame) and cached per file, keyed by
    path, size and modification time so a replaced file is checked again.
    """
    try:
        st = path.stat()
    except OSError as exc:
        return f"cannot stat {path}: {exc}"
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _VIDEO_CHECK_CACHE:
        _VIDEO_CHECK_CACHE[key] = _probe_video(path, st.st_size)
    return _VIDEO_CHECK_CACHE[key]


def _probe_video(path: Path, size: int) -> str | None:
    if size == 0:
        return "empty file"
    import cv2  # heavy import, only needed when videos are checked

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return "cannot be opened as a video"
        if capture.get(cv2.CAP_PROP_FRAME_COUNT) > 0:
            return None
        # Some containers do not report a frame count; decoding one frame settles it.
        ok, _ = capture.read()
        return None if ok else "has no decodable frames"
    finally:
        capture.release()


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _unsafe_relative(name: str) -> str | None:
    """Why a relative path taken from data is unsafe, or ``None``."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or os.path.isabs(name):
        return "is an absolute path"
    parts = re.split(r"[\\/]+", name)
    if ".." in parts:
        return "contains '..'"
    return None


def _resolve_video_file(videos_dir: Path, video_id: str) -> Path:
    """The video file for ``video_id`` under ``videos_dir``, resolved and checked safe.

    ``video_id`` with a known extension is used as is; otherwise the bare name and then
    each of :data:`VIDEO_EXTENSIONS` are tried. Symlinks are followed and the target must
    still lie inside ``videos_dir``.
    """
    why = _unsafe_relative(video_id)
    if why:
        raise _Excluded("path_traversal", f"video_id {video_id!r} {why}")
    root = videos_dir.resolve()
    if Path(video_id).suffix.lower() in VIDEO_EXTENSIONS:
        candidates = [video_id]
    else:
        candidates = [video_id] + [video_id + ext for ext in VIDEO_EXTENSIONS]
    for name in candidates:
        path = videos_dir / name
        if path.is_file() or path.is_symlink():
            resolved = path.resolve()
            if not _is_within(resolved, root):
                raise _Excluded("path_traversal", f"video {path} resolves to {resolved}, outside {root}")
            if not resolved.is_file():
                raise _Excluded("missing_video", f"video {path} is a broken link")
            return resolved
    tried = ", ".join(candidates)
    raise _Excluded("missing_video", f"no video file under {videos_dir} for {video_id!r} (tried: {tried})")


def _require_readable(path: Path) -> None:
    problem = check_video(path)
    if problem:
        raise _Excluded("unreadable_video", f"{path}: {problem}")


@dataclass
class _ZipSource:
    """One ``{dataset}.zip`` of VSI-Bench videos, indexed by member basename on first use."""

    path: Path
    error: str | None = None
    members: dict[str, zipfile.ZipInfo] = field(default_factory=dict)
    unsafe: dict[str, str] = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path) -> _ZipSource:
        source = cls(path)
        try:
            with zipfile.ZipFile(path) as archive:
                infos = archive.infolist()
        except (zipfile.BadZipFile, OSError) as exc:
            source.error = f"cannot read zip {path}: {exc}"
            return source
        for info in sorted(infos, key=lambda i: (i.filename.count("/"), i.filename)):
            if info.is_dir():
                continue
            base = PurePosixPath(info.filename.replace("\\", "/")).name
            why = _unsafe_relative(info.filename)
            if why is None and stat.S_ISLNK(info.external_attr >> 16):
                why = "is a symbolic link"
            if why:
                source.unsafe.setdefault(base, f"zip member {info.filename!r} in {path} {why}")
                continue
            # Shallowest path wins when two folders hold the same file name.
            source.members.setdefault(base, info)
        return source

    def extract(self, filename: str, target: Path) -> Path:
        """Extract one member (by basename) to ``target``, unless already there with the same size.

        A member that cannot be read (corrupt, encrypted, unsupported compression) excludes its
        record (``unreadable_video``); a target that cannot be written raises :class:`ExtractionError`,
        since every other member would fail the same way.
        """
        if self.error:
            raise _Excluded("unreadable_video", self.error)
        info = self.members.get(filename)
        if info is None:
            if filename in self.unsafe:
                raise _Excluded("path_traversal", self.unsafe[filename])
            raise _Excluded("missing_video", f"{filename} not found in {self.path}")
        if target.is_file() and target.stat().st_size == info.file_size:
            return target
        # We choose the output path ourselves and only copy bytes, so the member's own
        # path never decides where anything is written (no zip-slip).
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        except OSError as exc:
            raise _extraction_error(target, exc) from exc
        try:
            with os.fdopen(fd, "wb") as dst:
                self._copy_member(info, dst, target)
            os.replace(tmp_name, target)
        except OSError as exc:
            raise _extraction_error(target, exc) from exc
        finally:
            Path(tmp_name).unlink(missing_ok=True)
        logger.debug("extracted %s from %s to %s", info.filename, self.path, target)
        return target

    def _copy_member(self, info: zipfile.ZipInfo, dst: Any, target: Path) -> None:
        """Copy one member's bytes; read errors exclude the record, write errors raise ExtractionError."""
        try:
            with zipfile.ZipFile(self.path) as archive, archive.open(info) as src:
                while True:
                    try:
                        chunk = src.read(_COPY_CHUNK)
                    except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, zlib.error) as exc:
                        raise _Excluded(
                            "unreadable_video", f"cannot extract {info.filename} from {self.path}: {exc}"
                        ) from exc
                    if not chunk:
                        return
                    try:
                        dst.write(chunk)
                    except OSError as exc:
                        raise _extraction_error(target, exc) from exc
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError) as exc:
            # Opening the archive or the member failed (bad header, encryption, unknown compression).
            raise _Excluded("unreadable_video", f"cannot extract {info.filename} from {self.path}: {exc}") from exc


_COPY_CHUNK = 1 << 20


def _extraction_error(target: Path, exc: OSError) -> ExtractionError:
    folder = target.parent.parent  # <extract_dir>/<dataset>/<file>
    return ExtractionError(
        f"cannot write extracted videos to {folder} ({exc.strerror or exc}). Videos from VSI-Bench zips are "
        f"extracted there, outside the dataset folder; set data.extract_dir in params.yaml to a writable folder "
        f"with room for the videos (relative to the project root), or free some space."
    )


# ---------------------------------------------------------------------------------------
# The shared build loop
# ---------------------------------------------------------------------------------------


class _Builder:
    """Collects records, exclusions and videos; enforces unique question ids."""

    def __init__(self, source: str, file: Path) -> None:
        self.source = source
        self.file = file
        self.build = DatasetBuild()
        self._seen_ids: set[str] = set()

    def exclude(self, item: str, reason: str, detail: str) -> None:
        self.build.exclusions.append(Exclusion(source=self.source, item=item, reason=reason, detail=detail))

    def claim_id(self, question_id: str) -> None:
        if question_id in self._seen_ids:
            raise _Excluded("duplicate_id", f"question id {question_id!r} already used earlier in {self.file}")
        self._seen_ids.add(question_id)

    def add(self, record_fields: dict[str, Any], video_path: Path) -> None:
        try:
            record = QuestionRecord(**record_fields)
        except ValueError as exc:
            raise _Excluded("invalid_record", str(exc)) from exc
        self.build.records.append(record)
        self.build.videos[record.video_id] = str(video_path)

    def finish(self) -> DatasetBuild:
        counts: dict[str, int] = {}
        for exclusion in self.build.exclusions:
            counts[exclusion.reason] = counts.get(exclusion.reason, 0) + 1
        logger.info(
            "%s: %d records kept, %d excluded %s from %s",
            self.source,
            len(self.build.records),
            len(self.build.exclusions),
            counts or "",
            self.file,
        )
        return self.build


def _choices_answer_kind(question: str, answer: Any, category: str) -> tuple[dict[str, str], str, str]:
    """Parse choices from a full question text and normalise the answer to a letter.

    A question without choice lines is numeric only for a VSI numeric category.
    """
    choices = parse_choices(question)
    if not choices:
        if category in VSI_NUMERIC_CATEGORIES:
            return {}, _numeric_answer(answer), "numeric"
        raise _Excluded("invalid_record", "question text has no lettered choice lines (A. …)")
    letter = normalize_answer_letter(answer, choices)
    if letter is None:
        raise _Excluded("answer_not_in_choices", f"answer {answer!r} is not among choices {sorted(choices)}")
    return choices, letter, "multiple_choice"


def _process_question_rows(
    rows: Iterable[tuple[int, Mapping[str, Any]]],
    builder: _Builder,
    videos_dir: Path,
    *,
    scene_field: str | None,
    data_source: str | None,
) -> None:
    """Shared loop for the official JSON and UrbanVideo (same field names).

    ``scene_field=None`` uses the video id as scene; ``data_source=None`` infers it from
    the category.
    """
    for index, row in rows:
        item = f"row {index}"
        try:
            if not isinstance(row, Mapping):
                raise _Excluded("invalid_record", f"entry is a {type(row).__name__}, not an object")
            question_id = _text_field(row, "Question_id")
            item = question_id
            builder.claim_id(question_id)
            video_id = _text_field(row, "video_id")
            raw_category = _text_field(row, "question_category")
            question = _text_field(row, "question")
            scene_name = _text_field(row, scene_field) if scene_field else video_id
            category, level = _category_and_level(raw_category)
            choices, answer, kind = _choices_answer_kind(question, row.get("answer"), category)
            video_path = _resolve_video_file(videos_dir, video_id)
            _require_readable(video_path)
            builder.add(
                {
                    "question_id": question_id,
                    "video_id": video_id,
                    "category": category,
                    "question": question,
                    "answer": answer,
                    "scene_name": scene_name,
                    "data_source": data_source or _data_source_for(category),
                    "kind": kind,
                    "choices": choices,
                    "level": level,
                },
                video_path,
            )
        except _Excluded as exc:
            builder.exclude(item, exc.reason, f"{builder.file} {item}: {exc.detail}")


# ---------------------------------------------------------------------------------------
# File readers
# ---------------------------------------------------------------------------------------


def _read_parquet(path: Path, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    import pandas as pd

    if not path.is_file():
        raise DatasetFormatError(f"{path}: file not found; point the loader at the benchmark's parquet file")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a non-parquet file
        raise DatasetFormatError(f"{path}: not a readable parquet file ({exc}); re-download the parquet") from exc
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise DatasetFormatError(
            f"{path}: missing required column(s) {missing}; found {list(frame.columns)}. "
            f"The file must have columns {list(required)}."
        )
    keep = [c for c in (*required, *optional) if c in frame.columns]
    frame = frame[keep].astype(object)
    rows = frame.to_dict(orient="records")
    return [{k: _from_pandas(v) for k, v in row.items()} for row in rows]


def _from_pandas(value: Any) -> Any:
    """Pandas/numpy scalars and arrays → plain Python (NaN/NA → None)."""
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    if isinstance(value, list | tuple | dict):
        return value
    import pandas as pd

    return None if pd.isna(value) else value


# ---------------------------------------------------------------------------------------
# Public loaders
# ---------------------------------------------------------------------------------------


def load_official_json(annotations: Path, videos_dir: Path) -> DatasetBuild:
    """Load the official Embodied-R intermediate JSON.

    The file is a JSON list of objects with ``Question_id, video_id, question_category,
    question, answer, scene_name``; ``question`` holds "Question: …" and lettered choice
    lines, ``answer`` a letter written ``A``, ``A.``, ``(A)`` or ``A. text``. The video is
    ``videos_dir / video_id`` (the id may hold sub-folders; without an extension,
    :data:`VIDEO_EXTENSIONS` are tried). ``video_id`` and ``scene_name`` are kept as given.

    ``data_source`` is inferred from the category: ``"vsibench"`` for VSI-Bench
    categories, ``"urbanvideo"`` for UrbanVideo ones, ``"official"`` otherwise.

    Raises :class:`DatasetFormatError` if the file is not a JSON list of objects or a
    required field is absent from every object.
    """
    annotations = Path(annotations)
    videos_dir = Path(videos_dir)
    try:
        data = json.loads(annotations.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DatasetFormatError(f"{annotations}: file not found; pass the official annotations JSON") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"{annotations}: not valid JSON ({exc}); expected a JSON list of records") from exc
    if not isinstance(data, list):
        raise DatasetFormatError(
            f"{annotations}: top level is a {type(data).__name__}, expected a JSON list of records "
            f"with fields {list(OFFICIAL_FIELDS)}"
        )
    objects = [row for row in data if isinstance(row, dict)]
    if objects:
        absent = [name for name in OFFICIAL_FIELDS if not any(name in row for row in objects)]
        if absent:
            raise DatasetFormatError(
                f"{annotations}: required field(s) {absent} appear in no record; each record needs "
                f"{list(OFFICIAL_FIELDS)}"
            )
    elif data:
        raise DatasetFormatError(f"{annotations}: the list holds no JSON objects; expected one object per question")
    else:
        logger.warning("%s: empty list of records", annotations)
    builder = _Builder("official", annotations)
    _process_question_rows(enumerate(data), builder, videos_dir, scene_field="scene_name", data_source=None)
    return builder.finish()


def load_urbanvideo(mcq_parquet: Path, videos_dir: Path) -> DatasetBuild:
    """Load UrbanVideo-Bench ``MCQ.parquet``.

    Columns ``Question_id, video_id, question_category, question, answer``; ``question``
    holds "Question: …" and lettered choices, categories like "Landmark Position" are
    normalised to snake_case. Videos are ``videos_dir / video_id`` (extensions tried as in
    :func:`load_official_json`). ``data_source`` is ``"urbanvideo"``.

    ``scene_name`` is the ``video_id``: UrbanVideo has no scene field and each video is its
    own drone flight, so splitting by it keeps all questions of one flight together. A
    ``scene_name`` column, when present, is used instead.
    """
    mcq_parquet = Path(mcq_parquet)
    rows = _read_parquet(mcq_parquet, URBANVIDEO_COLUMNS, optional=("scene_name",))
    has_scene = bool(rows) and "scene_name" in rows[0]
    builder = _Builder("urbanvideo", mcq_parquet)
    _process_question_rows(
        enumerate(rows),
        builder,
        Path(videos_dir),
        scene_field="scene_name" if has_scene else None,
        data_source="urbanvideo",
    )
    return builder.finish()


def vsibench_video_id(dataset: str, scene_name: str) -> str:
    """The video id of one VSI-Bench scan: ``{dataset}__{scene_name}``.

    A flat name (no ``/``) so it is safe as one file-name component downstream (key-frame
    folders, caches); the double underscore separates the source from scene names, which
    may themselves contain single underscores.

    >>> vsibench_video_id("scannet", "scene0011_00")
    'scannet__scene0011_00'
    """
    return f"{dataset}__{scene_name}"


def _vsi_options(value: Any) -> dict[str, str] | None:
    """VSI-Bench ``options`` (list of "A. text", or None) → choices; None for numeric."""
    if _is_missing(value):
        return None
    if isinstance(value, str):
        # Some re-exports store the list as its string form.
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise _Excluded("invalid_record", f"options {value!r} is not a list") from None
    if not isinstance(value, list | tuple):
        raise _Excluded("invalid_record", f"options has unexpected type {type(value).__name__}")
    if not value:
        return None
    choices: dict[str, str] = {}
    for position, option in enumerate(value):
        if position >= len(LETTERS) or not isinstance(option, str):
            raise _Excluded("invalid_record", f"option {option!r} at position {position} is not usable")
        match = _OPTION_PREFIX_RE.match(option)
        expected = LETTERS[position]
        if match and match.group(1) == expected:
            text = match.group(2)
        elif match:
            raise _Excluded("invalid_record", f"option {option!r} at position {position} should be {expected}")
        else:
            text = option.strip()  # options given without letters: letter by position
        if not text:
            raise _Excluded("invalid_record", f"option {expected} is empty")
        choices[expected] = text
    return choices


def _safe_component(value: str, name: str) -> str:
    if value in {".", ".."} or re.search(r"[\\/]", value) or "\x00" in value:
        raise _Excluded("path_traversal", f"{name} {value!r} is not a plain file name")
    return value


def load_vsibench(parquet: Path, videos_dir: Path, *, extract_dir: Path) -> DatasetBuild:
    """Load VSI-Bench from its parquet and per-source videos.

    Columns ``id, dataset, scene_name, question_type, question, options, ground_truth``.
    Multiple-choice rows: ``options`` is a list like ``["A. left", "B. right"]``; the
    question text is composed as "Question: <stem>" plus lettered choices;
    ``ground_truth`` is a letter (any common form) or an option's text. Numeric rows
    (``options`` empty, category in ``VSI_NUMERIC_CATEGORIES``) become ``kind="numeric"``
    records with no choices and the number as answer. ``object_rel_direction_{easy,medium,
    hard}`` merge into ``object_rel_direction`` with the level kept in ``level``.

    Videos are looked up as ``videos_dir/{dataset}/{scene_name}.mp4`` and, failing that, in
    ``videos_dir/{dataset}.zip`` (member ``{scene_name}.mp4`` at any depth). Only needed
    members are extracted, to ``extract_dir/{dataset}/{scene_name}.mp4``, skipping files
    already there with the same size. Nothing is ever written under ``videos_dir`` (it may be
    read-only): an ``extract_dir`` inside it, or one that cannot be written, raises
    :class:`ExtractionError` naming the folder and the fix. Zip member paths never decide where
    files are written; members with absolute, ``..`` or symlink paths are refused
    (``path_traversal``).

    ``video_id`` is :func:`vsibench_video_id` (``{dataset}__{scene_name}``); ``question_id``
    is ``str(id)``; ``data_source`` is ``"vsibench"``.
    """
    parquet = Path(parquet)
    videos_dir = Path(videos_dir)
    extract_root = Path(extract_dir)
    if _is_within(extract_root.resolve(), videos_dir.resolve()):
        raise ExtractionError(
            f"the extraction folder {extract_root} lies inside the dataset folder {videos_dir}, which is never "
            "written to; set data.extract_dir in params.yaml to a folder outside it (default .cache/extracted)"
        )
    rows = _read_parquet(parquet, VSIBENCH_COLUMNS)
    builder = _Builder("vsibench", parquet)
    zips: dict[str, _ZipSource | None] = {}

    def find_video(dataset: str, scene_name: str) -> Path:
        filename = f"{scene_name}.mp4"
        folder_file = videos_dir / dataset / filename
        if folder_file.is_file() or folder_file.is_symlink():
            return _resolve_video_file(videos_dir, f"{dataset}/{filename}")
        if dataset not in zips:
            zip_path = videos_dir / f"{dataset}.zip"
            zips[dataset] = _ZipSource.open(zip_path) if zip_path.is_file() else None
        source = zips[dataset]
        if source is None:
            raise _Excluded("missing_video", f"neither {folder_file} nor {videos_dir / (dataset + '.zip')} exists")
        return source.extract(filename, extract_root / dataset / filename)

    for index, row in enumerate(rows):
        item = f"row {index}"
        try:
            question_id = _text_field(row, "id")
            item = question_id
            builder.claim_id(question_id)
            dataset = _safe_component(_text_field(row, "dataset"), "dataset")
            scene_name = _safe_component(_text_field(row, "scene_name"), "scene_name")
            category, level = _category_and_level(_text_field(row, "question_type"))
            stem = _text_field(row, "question")
            if not stem.startswith(QUESTION_PREFIX.strip()):
                stem = QUESTION_PREFIX + stem
            choices = _vsi_options(row.get("options"))
            ground_truth = row.get("ground_truth")
            if choices is None:
                if category not in VSI_NUMERIC_CATEGORIES:
                    raise _Excluded("invalid_record", f"category {category!r} is multiple-choice but has no options")
                kind, answer, question, choices = "numeric", _numeric_answer(ground_truth), stem, {}
            else:
                letter = normalize_answer_letter(ground_truth, choices)
                if letter is None:
                    raise _Excluded(
                        "answer_not_in_choices", f"ground_truth {ground_truth!r} is not among {sorted(choices)}"
                    )
                kind, answer, question = "multiple_choice", letter, compose_question(stem, choices)
            video_path = find_video(dataset, scene_name)
            _require_readable(video_path)
            builder.add(
                {
                    "question_id": question_id,
                    "video_id": vsibench_video_id(dataset, scene_name),
                    "category": category,
                    "question": question,
                    "answer": answer,
                    "scene_name": scene_name,
                    "data_source": "vsibench",
                    "kind": kind,
                    "choices": choices,
                    "level": level,
                },
                video_path,
            )
        except _Excluded as exc:
            builder.exclude(item, exc.reason, f"{parquet} {item}: {exc.detail}")
    return builder.finish()
