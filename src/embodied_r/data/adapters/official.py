"""The official Embodied-R intermediate JSON, and the row loop it shares with UrbanVideo-Bench (same field names)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from embodied_r.data.adapters.common import (
    DatasetFormatError,
    _Builder,
    _category_and_level,
    _Excluded,
    _numeric_answer,
    _text_field,
    normalize_answer_letter,
)
from embodied_r.data.adapters.videos import _require_readable, _resolve_video_file
from embodied_r.data.records import DatasetBuild, parse_choices
from embodied_r.vocabulary import URBAN_CATEGORIES, VSI_CATEGORIES, VSI_NUMERIC_CATEGORIES

logger = logging.getLogger(__name__)

OFFICIAL_FIELDS: tuple[str, ...] = ("Question_id", "video_id", "question_category", "question", "answer", "scene_name")


def _data_source_for(category: str) -> str:
    """Which benchmark a category belongs to, or ``"official"`` when it is not clear."""
    if category in VSI_CATEGORIES or category in VSI_NUMERIC_CATEGORIES:
        return "vsibench"
    if category in URBAN_CATEGORIES:
        return "urbanvideo"
    return "official"


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
