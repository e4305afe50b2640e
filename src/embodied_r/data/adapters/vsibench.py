"""VSI-Bench: its parquet and per-source video folders or zips (multiple-choice and numeric questions)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from embodied_r.data.adapters.common import (
    ExtractionError,
    _Builder,
    _category_and_level,
    _Excluded,
    _is_missing,
    _numeric_answer,
    _read_parquet,
    _text_field,
    normalize_answer_letter,
)
from embodied_r.data.adapters.videos import _is_within, _require_readable, _resolve_video_file, _ZipSource
from embodied_r.data.records import DatasetBuild, compose_question
from embodied_r.vocabulary import LETTERS, VSI_NUMERIC_CATEGORIES

#: Prefix put before VSI-Bench question stems so every source's question text reads
#: the same way ("Question: …" then lettered choices), as UrbanVideo and the official JSON do.
QUESTION_PREFIX = "Question: "

VSIBENCH_COLUMNS: tuple[str, ...] = (
    "id",
    "dataset",
    "scene_name",
    "question_type",
    "question",
    "options",
    "ground_truth",
)

# The "A. " prefix of a VSI-Bench option string.
_OPTION_PREFIX_RE = re.compile(r"^\s*\(?([A-H])[\.\):]\s*(.*?)\s*$", re.DOTALL)


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
