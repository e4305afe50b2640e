"""The question-record contract every data source produces.

A record is one multiple-choice (or numeric) question about one video. It carries the
official Embodied-R intermediate fields (``Question_id, video_id, question_category,
question, answer, scene_name``) plus what the pipeline needs downstream: the parsed
choices, the data source, the kind of answer and the split.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from embodied_r.vocabulary import CHOICE_LINE_RE, LETTERS

Split = Literal["train", "val", "test"]
ModelT = TypeVar("ModelT", bound=BaseModel)
AnswerKind = Literal["multiple_choice", "numeric"]


class QuestionRecord(BaseModel):
    """One question about one video.

    ``question`` is the full text shown to models: the question, then one line per
    lettered choice (``A. ...``), as in the official record format. ``choices`` holds the
    same choices parsed (letter → text); it is empty for numeric questions.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    question_id: str = Field(min_length=1)
    video_id: str = Field(min_length=1)
    category: str = Field(min_length=1)
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    scene_name: str = Field(min_length=1)
    data_source: str = Field(min_length=1)
    kind: AnswerKind = "multiple_choice"
    choices: dict[str, str] = Field(default_factory=dict)
    split: Split | None = None
    #: Optional finer label, e.g. ``hard`` for VSI-Bench relative direction.
    level: str | None = None

    @model_validator(mode="after")
    def _answer_among_choices(self) -> QuestionRecord:
        if self.kind == "multiple_choice":
            if not self.choices:
                raise ValueError(f"question {self.question_id}: multiple-choice record without choices")
            if self.answer not in self.choices:
                raise ValueError(
                    f"question {self.question_id}: answer {self.answer!r} is not among the choices "
                    f"{sorted(self.choices)}"
                )
        else:
            try:
                float(self.answer)
            except ValueError:
                raise ValueError(
                    f"question {self.question_id}: numeric record with non-numeric answer {self.answer!r}"
                ) from None
        return self

    def to_official(self) -> dict[str, str]:
        """The official Embodied-R intermediate JSON record."""
        return {
            "Question_id": self.question_id,
            "video_id": self.video_id,
            "question_category": self.category,
            "question": self.question,
            "answer": self.answer,
            "scene_name": self.scene_name,
        }


class Exclusion(BaseModel):
    """A record (or video) left out of the dataset, and why. Goes to the exclusions report."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    item: str
    reason: str
    detail: str = ""


class DatasetBuild(BaseModel):
    """What an adapter or the synthetic generator returns: records and exclusions.

    ``videos`` maps each ``video_id`` to its file path (absolute or relative to the
    dataset root, as the producer documents).
    """

    model_config = ConfigDict(extra="forbid")

    records: list[QuestionRecord] = Field(default_factory=list)
    exclusions: list[Exclusion] = Field(default_factory=list)
    videos: dict[str, str] = Field(default_factory=dict)


def format_choices(choices: dict[str, str]) -> str:
    """Render choices as lettered lines, ``A. text``, in letter order."""
    return "\n".join(f"{letter}. {choices[letter]}" for letter in sorted(choices))


def compose_question(stem: str, choices: dict[str, str]) -> str:
    """The full question text: stem, then the lettered choices, one per line."""
    return f"{stem.strip()}\n{format_choices(choices)}"


def parse_choices(question: str) -> dict[str, str]:
    """Parse lettered choice lines out of a question text.

    Only a run of consecutive letters starting at ``A`` counts, so a stray "B." inside
    the stem is not mistaken for a choice.

    >>> parse_choices("Question: Where is the door?\\nA. left\\nB. right")
    {'A': 'left', 'B': 'right'}
    """
    found: dict[str, str] = {}
    for line in question.splitlines():
        match = CHOICE_LINE_RE.match(line)
        if match and match.group(1) == LETTERS[len(found)]:
            found[match.group(1)] = match.group(2)
    return found


def dumps_canonical(obj: object) -> str:
    """JSON with sorted keys and fixed separators: the same data gives the same bytes."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _plain(row: BaseModel | dict) -> dict:
    return row.model_dump(mode="json") if isinstance(row, BaseModel) else row


def write_jsonl(path: Path, rows: Iterable[BaseModel | dict]) -> int:
    """Write rows as canonical JSON lines; returns the number written.

    Atomic: the rows go to a temporary file beside ``path`` that replaces it whole, so a killed run leaves the old
    file or the new one, never half of it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")  # opened as the file itself would be (umask)
    count = 0
    try:
        with tmp.open("w", encoding="utf-8", newline="\n") as fh:
            for row in rows:
                fh.write(dumps_canonical(_plain(row)) + "\n")
                count += 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def append_jsonl(path: Path, row: BaseModel | dict) -> None:
    """Append one row as a canonical JSON line (a run log), creating the file and its folder when missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8", newline="\n") as fh:
        fh.write(dumps_canonical(_plain(row)) + "\n")


def write_json(path: Path, obj: object) -> None:
    """Write pretty, key-sorted JSON ending with a newline (byte-deterministic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, sort_keys=True, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def read_jsonl_models(path: Path, model: type[ModelT], what: str) -> list[ModelT]:
    """Read a JSONL file of ``model`` rows; a bad line fails naming the file, the line and ``what`` it should be."""
    rows = []
    with Path(path).open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rows.append(model.model_validate_json(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{line_no}: invalid {what}: {exc}") from exc
    return rows


def read_records(path: Path) -> list[QuestionRecord]:
    """Read a records JSONL file written by :func:`write_jsonl`."""
    return read_jsonl_models(path, QuestionRecord, "record")
