"""The per-record data checks of one VLM answer, and the note the blocking checks add about re-asked answers.

The ``descriptions`` suite (:mod:`embodied_r.validation.suites`) checks every frame of every sample in Great
Expectations; :func:`answer_problem` applies the same per-frame rules (observation present, its length within
``[min_description_chars, max_description_chars]``, no refusal text in the raw answer) to one answer as it
arrives, so the perception driver knows which cached answers the checks will refuse and asks them again instead
of serving them from the cache (up to ``perception.max_attempts``).

This module imports neither pandas nor Great Expectations: the driver calls it for every answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from embodied_r.validation.config import ValidationConfig

__all__ = ["INVALID_ANSWERS", "answer_problem", "invalid_answers_note", "read_invalid_answers"]

#: The file (next to samples.jsonl) listing this run's answers that fail the per-record checks.
INVALID_ANSWERS = "invalid_answers.jsonl"

#: Answers named in a note before "and N more".
_NOTE_EXAMPLES = 5


class _Frame(Protocol):
    observation: str
    raw: str


@lru_cache(maxsize=8)
def _refusal(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{pattern})" for pattern in patterns), re.IGNORECASE)


def answer_problem(frame: _Frame, cfg: ValidationConfig) -> str | None:
    """Why the per-record checks refuse this described frame, or ``None`` when it passes them.

    ``frame`` is a :class:`~embodied_r.perception.records.FrameDescription` (its ``observation``, the text the
    LM reads, and ``raw``, the VLM's answer).

    >>> from embodied_r.perception.records import FrameDescription
    >>> answer_problem(FrameDescription(index=0, observation="ok", raw="ok"), ValidationConfig())
    'description 2 chars, fewer than validation.min_description_chars=20'
    """
    chars = len(frame.observation.strip())
    if chars == 0:
        return "empty description"
    if chars < cfg.min_description_chars:
        return f"description {chars} chars, fewer than validation.min_description_chars={cfg.min_description_chars}"
    if chars > cfg.max_description_chars:
        return f"description {chars} chars, more than validation.max_description_chars={cfg.max_description_chars}"
    refusal = _refusal(tuple(cfg.refusal_patterns))
    match = refusal.search(frame.raw) if refusal is not None else None
    if match is not None:
        return f"refusal text {match.group(0)!r} (validation.refusal_patterns)"
    return None


def invalid_answers_note(entries: Sequence[Mapping[str, Any]]) -> str | None:
    """One paragraph for a failing check: which answers failed the per-record checks, which are asked again.

    ``entries`` are the lines of :data:`INVALID_ANSWERS` (``video_id``, ``k``, ``frame_indices``, ``problem``,
    ``attempt``, ``max_attempts``, ``reasked_next_run``). ``None`` when there are none.
    """
    if not entries:
        return None
    again = [e for e in entries if e.get("reasked_next_run")]
    stuck = [e for e in entries if not e.get("reasked_next_run")]
    reasked_now = sum(int(e.get("attempt", 1)) > 1 for e in entries)
    bound = max(int(e.get("max_attempts", 1)) for e in entries)
    parts = [
        f"{len(entries)} VLM answers failed the per-record checks this run "
        f"({reasked_now} of them were already re-asked answers)."
    ]
    if again:
        parts.append(
            f"{len(again)} will be re-asked on the next run instead of served from the cache (perception.max_attempts"
            f"={bound}): materialize vlm_descriptions again (dvc repro). They are: {_names(again)}."
        )
    if stuck:
        parts.append(
            f"{len(stuck)} stay failing after {bound} attempts and are not asked again; their questions are in "
            f"failures.jsonl: {_names(stuck)}. Fix: a stronger VLM or prompt, looser validation.* bounds, a larger "
            "perception.max_attempts, or accept dropping them with perception.max_failed_share."
        )
    return " ".join(parts)


def read_invalid_answers(path: Path) -> list[dict[str, Any]]:
    """The lines of an :data:`INVALID_ANSWERS` file; ``[]`` when it does not exist (an older run wrote none)."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _names(entries: Sequence[Mapping[str, Any]]) -> str:
    shown = [
        f"{e.get('video_id')} k={e.get('k')} (attempt {e.get('attempt')}: {e.get('problem')})"
        for e in entries[:_NOTE_EXAMPLES]
    ]
    more = f" and {len(entries) - _NOTE_EXAMPLES} more" if len(entries) > _NOTE_EXAMPLES else ""
    return "; ".join(shown) + more
