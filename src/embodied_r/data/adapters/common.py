"""What every adapter shares: the errors, the exclusion reasons, field/answer helpers, the build loop, parquet reading.

A record an adapter leaves out raises :class:`_Excluded` inside the adapter's row loop; :class:`_Builder` turns
it into an :class:`~embodied_r.data.records.Exclusion` and the loop goes on.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from embodied_r.data.records import DatasetBuild, Exclusion, QuestionRecord
from embodied_r.errors import UserError
from embodied_r.vocabulary import REL_DIRECTION_LEVELS, normalize_category

logger = logging.getLogger(__name__)

#: Reasons an adapter leaves a record out (``Exclusion.reason``).
#: Reasons an adapter leaves a record out (``Exclusion.reason``).
EXCLUSION_REASONS: tuple[str, ...] = (
    "missing_video",
    "unreadable_video",
    "answer_not_in_choices",
    "duplicate_id",
    "path_traversal",
    "invalid_record",
)

# "A", "A.", "(A)", "A)", "A:", "A. some text", "(A) some text".
_ANSWER_LETTER_RE = re.compile(r"^\(?\s*([A-Ha-h])\s*(?:[\.\):]\s*(.*))?$", re.DOTALL)


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
