"""The key-frame stage over a project's videos (the library side of ``keyframes``).

Extracts the key frames of the requested videos of ``raw_videos`` into ``<keyframes>/<video_id>/`` (images,
``manifest.json``, ``contact_sheet.png``; a video already done with the same settings is skipped), and records each
video that cannot be used in ``<keyframes>/_failures/<video_id>.json`` with the fix (cleared once it works), so
``vlm_descriptions`` leaves its questions out instead of failing them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embodied_r.config import Params
from embodied_r.data.ingest import read_videos
from embodied_r.keyframes.batch import FAILURES_DIR, extract_many, write_failure
from embodied_r.layout import Layout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeyframesOutcome:
    """Per extracted video its summary (count, mean overlap, decode time, resumed, indices, folder); the failures."""

    videos: dict[str, dict[str, Any]]
    failures: list[dict[str, str]]
    requested: int

    def too_many_failures(self, max_failed_share: float, failures_dir: Path) -> str | None:
        """One paragraph when more than ``max_failed_share`` of the requested videos failed (else None)."""
        share = len(self.failures) / self.requested if self.requested else 0.0
        if not self.failures or share <= max_failed_share:
            return None
        first = self.failures[0]
        return (
            f"{len(self.failures)} of {self.requested} videos failed key-frame extraction "
            f"(allowed share keyframes.max_failed_share={max_failed_share}); "
            f"see {failures_dir}. First: {first['video_id']}: {first['error']} "
            "Fix or remove these videos and rematerialize raw_videos, or raise keyframes.max_failed_share "
            "to go on without them (their questions are then left out)."
        )


def extract_keyframes(params: Params, layout: Layout, video_ids: Sequence[str]) -> KeyframesOutcome:
    """Extract the key frames of ``video_ids`` (ids of ``raw_videos``' ``videos.json``); record or clear failures."""
    videos = read_videos(layout.raw)
    paths = {video_id: Path(videos[video_id]["path"]) for video_id in video_ids}
    results, failures = extract_many(paths, params.keyframes, layout.keyframes, progress=len(paths) > 1)
    extracted = {}
    for video_id, summary in sorted(results.items()):
        write_failure(layout.keyframes, video_id, None)
        out_dir = layout.keyframes / video_id
        manifest = json.loads((out_dir / "manifest.json").read_text())
        overlaps = [kf["overlap"] for kf in manifest["keyframes"] if kf.get("overlap") is not None]
        extracted[video_id] = {
            "count": summary["count"],
            "mean_overlap": round(sum(overlaps) / len(overlaps), 4) if overlaps else None,
            "decode_seconds": summary.get("decode_seconds"),
            "resumed": summary.get("skipped", False),
            "indices": [kf["index"] for kf in manifest["keyframes"]],
            "path": out_dir,
        }
    for failure in failures:
        write_failure(layout.keyframes, failure["video_id"], failure)
        log.error("key frames of %s failed (%s): %s", failure["video_id"], failure["reason"], failure["error"])
    return KeyframesOutcome(videos=extracted, failures=failures, requested=len(paths))


__all__ = ["FAILURES_DIR", "KeyframesOutcome", "extract_keyframes"]
