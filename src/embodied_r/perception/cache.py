"""A content-addressed cache of VLM answers: one small JSON file per (video, key frames, prompt, model, question).

The key is a sha256 over everything that changes an answer (see :func:`cache_key`); entries live at
``<root>/<key[:2]>/<key>.json`` and are written atomically (temporary file + ``os.replace``), so a killed run
loses nothing already described and never leaves a half-written entry. Failures are never cached.

An entry holds the answer ``text``, token usage, what was asked, ``attempts`` (answers given so far for this
key) and, when the answer failed the per-record data checks, ``invalid`` (why). The driver
(:mod:`embodied_r.perception.describe`) re-checks every entry it reads and asks a failing one again instead of
serving it, until ``perception.max_attempts`` answers were given — so a refusal cached once is not served forever.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def cache_key(
    *,
    video_sha256: str,
    keyframe_indices: Sequence[int],
    frame_pair: Sequence[int],
    prompt_version: str,
    backend: str,
    model: str,
    settings: dict[str, Any],
    questions: Sequence[str],
) -> str:
    """sha256 (hex) of the canonical JSON of everything that determines one answer.

    ``questions`` is the question (per-question mode) or the video's sorted question set (per-video mode);
    ``frame_pair`` the frame numbers described (one for key frame 0, two for a pair).
    """
    payload = {
        "video_sha256": video_sha256,
        "keyframe_indices": list(keyframe_indices),
        "frame_pair": list(frame_pair),
        "prompt_version": prompt_version,
        "backend": backend,
        "model": model,
        "settings": settings,
        "questions": list(questions),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


class DescriptionCache:
    """Answers on disk by key; thread-safe; counts hits and misses."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    def path(self, key: str) -> Path:
        """Where the entry of ``key`` lives."""
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored entry, or ``None`` (a missing or unreadable entry is a miss)."""
        try:
            entry = json.loads(self.path(key).read_text(encoding="utf-8"))
        except FileNotFoundError:
            entry = None
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable cache entry %s: %s", self.path(key), exc)
            entry = None
        with self._lock:
            if entry is None:
                self.misses += 1
            else:
                self.hits += 1
        return entry

    def put(self, key: str, entry: dict[str, Any]) -> None:
        """Write the entry atomically (a reader sees the old file, the new one, or none — never a partial one)."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{key[:8]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(entry, fh, sort_keys=True, ensure_ascii=False)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def stats(self) -> dict[str, int]:
        """``{"hits": …, "misses": …}`` since this object was made."""
        with self._lock:
            return {"hits": self.hits, "misses": self.misses}
