"""Extract key frames for many videos: one bad video is recorded as a failure and the others go on."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import cv2
from tqdm import tqdm

from embodied_r.config import KeyframesConfig
from embodied_r.keyframes.artifacts import params_hash, read_manifest, write_keyframe_artifacts
from embodied_r.keyframes.extract import extract_keyframes
from embodied_r.keyframes.video import VideoError

logger = logging.getLogger(__name__)

#: Folder under the key-frame root holding ``<video_id>.json`` for each video whose extraction failed.
FAILURES_DIR = "_failures"


def write_failure(root: str | Path, video_id: str, failure: dict[str, str] | None) -> None:
    """Record (or clear, with ``failure=None``) a video's failure in ``<root>/_failures/<video_id>.json``.

    Downstream stages read these records to leave the video's questions out (:func:`read_failures`).
    """
    path = Path(root) / FAILURES_DIR / f"{video_id}.json"
    if failure is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**failure, "video_id": video_id}, indent=2, sort_keys=True) + "\n")


def read_failures(root: str | Path) -> dict[str, dict[str, str]]:
    """The recorded key-frame failures under ``root``, by video id (``{"video_id", "reason", "error"}``)."""
    folder = Path(root) / FAILURES_DIR
    failures = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            entry = {"error": f"unreadable failure record {path}"}
        failures[path.stem] = {"video_id": path.stem, "reason": "unreadable_video", **entry}
    return failures


def _is_complete(out_dir: Path, wanted_hash: str) -> dict[str, Any] | None:
    manifest = read_manifest(out_dir)
    if manifest is None or manifest.get("params_hash") != wanted_hash:
        return None
    names = [kf["file"] for kf in manifest.get("keyframes", [])] + [manifest.get("contact_sheet", "")]
    return manifest if all((out_dir / name).is_file() for name in names) else None


def extract_many(
    videos: dict[str, Path],
    cfg: KeyframesConfig,
    out_root: str | Path,
    *,
    progress: bool = True,
) -> tuple[dict[str, dict[str, Any]], list[dict[str, str]]]:
    """Extract and write key frames for ``{video_id: path}`` into ``out_root/<video_id>/``.

    A video whose directory already holds a complete manifest with the same ``params_hash`` is skipped
    (resume); its summary is rebuilt from the manifest with ``"skipped": True``. A video that cannot be
    used (:class:`VideoError`, or an OpenCV/file error) becomes ``{"video_id", "reason", "error"}`` in the
    failures (``reason`` as :attr:`VideoError.reason`, ``unreadable_video`` for other errors) and the batch
    goes on.

    Returns ``(summaries by video id, failures)``.
    """
    out_root = Path(out_root)
    wanted = params_hash(cfg)
    results: dict[str, dict[str, Any]] = {}
    failures: list[dict[str, str]] = []
    for video_id in tqdm(sorted(videos), desc="key frames", unit="video", disable=not progress):
        out_dir = out_root / video_id
        manifest = _is_complete(out_dir, wanted)
        if manifest is not None:
            logger.debug("%s: up to date, skipped", video_id)
            results[video_id] = {
                "video": manifest["video"],
                "count": manifest["count"],
                "clamped": manifest["clamped"],
                "params_hash": wanted,
                "skipped": True,
            }
            continue
        try:
            result = extract_keyframes(videos[video_id], cfg)
            summary = write_keyframe_artifacts(result, None, out_dir)
        except (VideoError, cv2.error, OSError) as exc:
            logger.warning("%s: key-frame extraction failed: %s", video_id, exc)
            reason = exc.reason if isinstance(exc, VideoError) else "unreadable_video"
            failures.append({"video_id": video_id, "reason": reason, "error": f"{type(exc).__name__}: {exc}"})
            continue
        results[video_id] = {**summary, "skipped": False}
    if failures:
        logger.warning("%d of %d videos failed key-frame extraction", len(failures), len(videos))
    return results, failures
