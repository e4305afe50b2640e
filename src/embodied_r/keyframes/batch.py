"""Extract key frames for many videos: one bad video is recorded as a failure and the others go on."""

from __future__ import annotations

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
    used (:class:`VideoError`, or an OpenCV/file error) becomes ``{"video_id", "error"}`` in the failures
    and the batch goes on.

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
            failures.append({"video_id": video_id, "error": f"{type(exc).__name__}: {exc}"})
            continue
        results[video_id] = {**summary, "skipped": False}
    if failures:
        logger.warning("%d of %d videos failed key-frame extraction", len(failures), len(videos))
    return results, failures
