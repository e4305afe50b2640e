"""Flatten perception outputs into the tables the data-quality suites validate.

Three tables, each with its columns documented in a ``*_COLUMNS`` mapping (name → meaning):

- :data:`SAMPLE_COLUMNS` — one row per :class:`~embodied_r.perception.records.DescribedSample`;
- :data:`FRAME_COLUMNS` — one row per described key frame;
- :data:`SCENE_SPLIT_COLUMNS` — one row per distinct (scene, split) pair.

The tables keep every column even when there are no samples, so an empty batch is validated
(and fails on row count) rather than crashing on a missing column.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from embodied_r.perception.records import DescribedSample

SAMPLE_COLUMNS: dict[str, str] = {
    "question_id": "Question id (unique per sample).",
    "video_id": "Video the question is about.",
    "scene_name": "Scene of the video; the split unit.",
    "category": "Task category (snake_case).",
    "split": "train / val / test, or None when unassigned.",
    "data_source": "Benchmark the question comes from.",
    "mode": "per_question or per_video perception.",
    "n_keyframes": "len(keyframe_indices).",
    "n_frames": "len(frames): described key frames; must equal n_keyframes.",
    "n_non_first_frames": "Frames after the first, i.e. frames that carry an action.",
    "n_unparsable_actions": "Non-first frames whose action is None (the three points could not be parsed).",
    "unparsable_action_share": "n_unparsable_actions / n_non_first_frames (0.0 without non-first frames).",
    "n_descriptions_empty": "Frames whose observation is empty or whitespace only.",
    "min_description_chars": "Shortest stripped observation of the sample, in characters (0 without frames).",
    "max_description_chars": "Longest stripped observation of the sample, in characters (0 without frames).",
    "has_refusal": "Whether any frame's raw VLM answer matches a refusal pattern.",
    "answer": "Ground-truth answer (a letter for multiple-choice questions).",
    "choices": 'Option letters joined with commas, e.g. "A,B,C,D" ("" for numeric questions).',
    "n_choices": "Number of option letters (0 for numeric questions).",
    "answer_in_choices": "Whether the answer is one of the option letters (None for numeric questions).",
}

FRAME_COLUMNS: dict[str, str] = {
    "question_id": "Sample the frame belongs to.",
    "video_id": "Video of the sample.",
    "scene_name": "Scene of the video.",
    "frame_position": "0-based position of the frame among the sample's key frames.",
    "frame_index": "Frame number in the video (FrameDescription.index).",
    "is_first": "frame_position == 0: the frame described alone, without an action.",
    "action": "Parsed action, one of the ten vocabulary actions, or None when unparsable (always None first).",
    "observation": "Observation text the LM reads (the whole answer when parsing failed).",
    "raw": "The VLM's answer as returned.",
    "description_chars": "Characters of the stripped observation.",
}

SCENE_SPLIT_COLUMNS: dict[str, str] = {
    "scene_name": "Scene; must appear once in this table (one split per scene).",
    "split": "Split the scene's samples are in (None when unassigned).",
    "n_samples": "Samples of the scene in that split.",
    "question_ids": "Up to five question ids of those samples, comma-separated, to find them.",
}


@dataclass(frozen=True)
class PerceptionTables:
    """The three tables built from one batch of described samples."""

    samples: pd.DataFrame
    frames: pd.DataFrame
    scene_splits: pd.DataFrame

    def table(self, name: str) -> pd.DataFrame:
        """The table called ``name`` (``samples``, ``frames`` or ``scene_splits``)."""
        if name not in TABLE_NAMES:
            raise KeyError(f"unknown table {name!r}; expected one of {TABLE_NAMES}")
        return getattr(self, name)


#: Names of the tables, as the suites refer to them.
TABLE_NAMES: tuple[str, ...] = ("samples", "frames", "scene_splits")


def _refusal_matcher(refusal_patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not refusal_patterns:
        return None
    return re.compile("|".join(f"(?:{pattern})" for pattern in refusal_patterns), re.IGNORECASE)


def sample_table(samples: Sequence[DescribedSample], refusal_patterns: Sequence[str] = ()) -> pd.DataFrame:
    """One row per sample, with the columns of :data:`SAMPLE_COLUMNS`.

    ``refusal_patterns`` are case-insensitive regexes; they only fill ``has_refusal``.
    """
    refusal = _refusal_matcher(refusal_patterns)
    rows = []
    for sample in samples:
        lengths = [len(frame.observation.strip()) for frame in sample.frames]
        non_first = sample.frames[1:]
        n_unparsable = sum(frame.action is None for frame in non_first)
        rows.append(
            {
                "question_id": sample.question_id,
                "video_id": sample.video_id,
                "scene_name": sample.scene_name,
                "category": sample.category,
                "split": sample.split,
                "data_source": sample.data_source,
                "mode": sample.mode,
                "n_keyframes": len(sample.keyframe_indices),
                "n_frames": len(sample.frames),
                "n_non_first_frames": len(non_first),
                "n_unparsable_actions": n_unparsable,
                "unparsable_action_share": n_unparsable / len(non_first) if non_first else 0.0,
                "n_descriptions_empty": sum(length == 0 for length in lengths),
                "min_description_chars": min(lengths, default=0),
                "max_description_chars": max(lengths, default=0),
                "has_refusal": refusal is not None and any(refusal.search(frame.raw) for frame in sample.frames),
                "answer": sample.answer,
                "choices": ",".join(sample.choices),
                "n_choices": len(sample.choices),
                "answer_in_choices": (sample.answer in sample.choices) if sample.choices else None,
            }
        )
    return pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))


def frame_table(samples: Sequence[DescribedSample]) -> pd.DataFrame:
    """One row per described key frame, with the columns of :data:`FRAME_COLUMNS`."""
    rows = [
        {
            "question_id": sample.question_id,
            "video_id": sample.video_id,
            "scene_name": sample.scene_name,
            "frame_position": position,
            "frame_index": frame.index,
            "is_first": position == 0,
            "action": frame.action,
            "observation": frame.observation,
            "raw": frame.raw,
            "description_chars": len(frame.observation.strip()),
        }
        for sample in samples
        for position, frame in enumerate(sample.frames)
    ]
    return pd.DataFrame(rows, columns=list(FRAME_COLUMNS))


def scene_split_table(samples: Sequence[DescribedSample]) -> pd.DataFrame:
    """One row per distinct (scene, split) pair, with the columns of :data:`SCENE_SPLIT_COLUMNS`.

    A scene that is in exactly one split has exactly one row, so "each scene in one split"
    is "scene_name is unique" on this table.
    """
    groups: dict[tuple[str, str | None], list[str]] = {}
    for sample in samples:
        groups.setdefault((sample.scene_name, sample.split), []).append(sample.question_id)
    rows = [
        {"scene_name": scene, "split": split, "n_samples": len(ids), "question_ids": ",".join(ids[:5])}
        for (scene, split), ids in sorted(groups.items(), key=lambda item: (item[0][0], str(item[0][1])))
    ]
    return pd.DataFrame(rows, columns=list(SCENE_SPLIT_COLUMNS))


def build_tables(samples: Sequence[DescribedSample], refusal_patterns: Sequence[str] = ()) -> PerceptionTables:
    """All three tables of a batch of samples.

    >>> build_tables([]).samples.shape
    (0, 20)
    """
    return PerceptionTables(
        samples=sample_table(samples, refusal_patterns),
        frames=frame_table(samples),
        scene_splits=scene_split_table(samples),
    )
