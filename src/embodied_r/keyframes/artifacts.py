"""Write a video's key frames, manifest and contact sheet — byte-identical for the same input and params.

Layout of ``out_dir``::

    frame_000_000000.jpg   # key frame k=0, frame number 0 (JPEG, quality JPEG_QUALITY, BGR as decoded)
    frame_001_000150.jpg
    ...
    manifest.json          # sorted keys, rounded floats, no timestamps and no absolute paths
    contact_sheet.png      # thumbnails labelled with k, frame number, time, reason and overlap

Nothing time-dependent goes into these files (decode and match seconds go to the returned summary only), so
DVC and Dagster see the same hashes on every run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from embodied_r.config import KeyframesConfig
from embodied_r.keyframes.extract import KeyframeResult

logger = logging.getLogger(__name__)

#: Bump when the selection algorithm or the artifact layout changes: it invalidates resumed outputs.
ALGORITHM_VERSION = 1
JPEG_QUALITY = 95
MANIFEST = "manifest.json"
CONTACT_SHEET = "contact_sheet.png"
THUMB_WIDTH = 256
SHEET_COLUMNS = 4


def params_hash(cfg: KeyframesConfig) -> str:
    """Short hash of the parameters that change the output (config plus algorithm and image settings)."""
    payload = {
        "algorithm_version": ALGORITHM_VERSION,
        "jpeg_quality": JPEG_QUALITY,
        "params": cfg.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def frame_filename(k: int, index: int) -> str:
    """``frame_{k:03d}_{index:06d}.jpg`` — k-th key frame, frame number ``index`` in the video."""
    return f"frame_{k:03d}_{index:06d}.jpg"


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def build_manifest(result: KeyframeResult) -> dict[str, Any]:
    """The manifest as a dict: indices, times, overlaps, reasons, video info and parameters (JSON-ready)."""
    info = result.info
    return {
        "algorithm_version": ALGORITHM_VERSION,
        "video": Path(result.video).name,
        "video_info": {
            "frames": info.frames,
            "fps": round(info.fps, 4),
            "width": info.width,
            "height": info.height,
            "duration": round(info.duration, 3),
        },
        "params": result.config.model_dump(mode="json"),
        "params_hash": params_hash(result.config),
        "image_format": "jpg",
        "jpeg_quality": JPEG_QUALITY,
        "sample_indices": result.sample_indices,
        "sample_overlaps": [_round(v, 4) for v in result.sample_overlaps],
        "walk_indices": result.walk_indices,
        "clamped": result.clamped,
        "count": len(result.keyframes),
        "keyframes": [
            {
                "k": k,
                "file": frame_filename(k, kf.index),
                "index": kf.index,
                "timestamp": round(kf.timestamp, 3),
                "reason": kf.reason,
                "failure": kf.failure,
                "overlap": _round(kf.overlap, 4),
            }
            for k, kf in enumerate(result.keyframes)
        ],
        "contact_sheet": CONTACT_SHEET,
    }


def _encode(ext: str, image: np.ndarray, params: Sequence[int] = ()) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    if not ok:
        raise ValueError(f"cv2.imencode({ext}) failed for an image of shape {image.shape}")
    return buf.tobytes()


def contact_sheet(result: KeyframeResult, frames: Sequence[np.ndarray]) -> np.ndarray:
    """A grid of thumbnails (``SHEET_COLUMNS`` wide), each labelled ``#k f=index t=seconds`` and its reason."""
    h0, w0 = frames[0].shape[:2]
    tw = THUMB_WIDTH
    th = max(1, round(h0 * tw / w0))
    label_h = 34
    cols = min(SHEET_COLUMNS, len(frames))
    rows = math.ceil(len(frames) / cols)
    sheet = np.full((rows * (th + label_h), cols * tw, 3), 32, dtype=np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for k, (kf, frame) in enumerate(zip(result.keyframes, frames, strict=True)):
        r, c = divmod(k, cols)
        y, x = r * (th + label_h), c * tw
        sheet[y : y + th, x : x + tw] = cv2.resize(frame, (tw, th), interpolation=cv2.INTER_AREA)
        why = kf.reason if kf.failure is None else f"{kf.reason}:{kf.failure}"
        overlap = "" if kf.overlap is None else f" ov={kf.overlap:.2f}"
        cv2.putText(
            sheet,
            f"#{k} f={kf.index} t={kf.timestamp:.1f}s",
            (x + 4, y + th + 14),
            font,
            0.4,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        cv2.putText(sheet, f"{why}{overlap}", (x + 4, y + th + 29), font, 0.4, (160, 220, 255), 1, cv2.LINE_AA)
    return sheet


def write_keyframe_artifacts(
    result: KeyframeResult, frames: Sequence[np.ndarray] | None, out_dir: str | Path
) -> dict[str, Any]:
    """Write the key-frame images, ``manifest.json`` and ``contact_sheet.png`` to ``out_dir``.

    ``frames`` are the kept frames in ``result.keyframes`` order (BGR); ``None`` uses ``result.frames``.
    Stale ``frame_*.jpg`` files from an earlier run are removed; the manifest is written last, so its
    presence means the directory is complete. Returns a small summary (not written to disk).
    """
    frames = result.frames if frames is None else frames
    if len(frames) != len(result.keyframes):
        raise ValueError(f"{len(frames)} frames given for {len(result.keyframes)} key frames of {result.video}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("frame_*.jpg"), out / MANIFEST]:
        stale.unlink(missing_ok=True)
    files = []
    for k, (kf, frame) in enumerate(zip(result.keyframes, frames, strict=True)):
        name = frame_filename(k, kf.index)
        (out / name).write_bytes(_encode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]))
        files.append(name)
    (out / CONTACT_SHEET).write_bytes(_encode(".png", contact_sheet(result, frames)))
    manifest = build_manifest(result)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    overlaps = [kf.overlap for kf in result.keyframes if kf.overlap is not None]
    return {
        "video": Path(result.video).name,
        "count": len(result.keyframes),
        "samples": len(result.sample_indices),
        "walk_count": len(result.walk_indices),
        "clamped": result.clamped,
        "mean_overlap": round(float(np.mean(overlaps)), 4) if overlaps else None,
        "decode_seconds": round(result.decode_seconds, 3),
        "match_seconds": round(result.match_seconds, 3),
        "params_hash": manifest["params_hash"],
        "files": files,
    }


def read_manifest(out_dir: str | Path) -> dict[str, Any] | None:
    """The manifest in ``out_dir``, or ``None`` when there is none (or it is unreadable)."""
    path = Path(out_dir) / MANIFEST
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
