"""Probe a video and decode only the frames the key-frame walk needs.

Decoding goes through decord (``VideoReader.get_batch``) in chunks, so memory holds at most one chunk of
frames plus the frames the caller decides to keep; the whole video is never materialised. Frames come
out as BGR ``uint8`` arrays (OpenCV's convention), so ``cv2.imwrite`` and ``cv2.cvtColor(..., BGR2GRAY)``
work on them directly.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict

logger = logging.getLogger(__name__)


class VideoError(ValueError):
    """A video cannot be used for key-frame extraction; the message names the file and the fix."""


class VideoInfo(BaseModel):
    """What the container says about a video (frame count, rate, size, duration in seconds)."""

    model_config = ConfigDict(frozen=True)

    frames: int
    fps: float
    width: int
    height: int
    duration: float


def _open_reader(path: Path, num_threads: int = 1):
    """Open a decord reader, turning decord's RuntimeError into a VideoError naming the file."""
    import decord  # imported lazily: decord loads FFmpeg libraries at import time

    try:
        return decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=num_threads)
    except Exception as exc:  # decord raises bare RuntimeError (DECORDError) for every open failure
        raise VideoError(
            f"{path}: cannot open or decode the video ({exc.__class__.__name__}: {str(exc).strip()[:200]}). "
            "The file is corrupt, truncated or uses a codec FFmpeg cannot read; re-encode it, e.g. "
            "`ffmpeg -i in.mp4 -c:v libx264 out.mp4`."
        ) from exc


def probe_video(path: str | Path) -> VideoInfo:
    """Read a video's frame count, fps, size and duration, or raise :class:`VideoError` saying why not.

    Rejected: a missing file, bytes FFmpeg cannot open (corrupt, truncated, unknown codec), zero frames,
    an fps that is 0, negative or NaN, and videos shorter than one second.

    >>> info = probe_video("scene0001.mp4")  # doctest: +SKIP
    >>> info.frames, info.fps
    (900, 30.0)
    """
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file. Check the videos directory and the video id.")
    reader = _open_reader(path)
    frames = len(reader)
    fps = float(reader.get_avg_fps())
    height = width = 0
    if frames > 0:
        try:
            height, width = (int(v) for v in reader[0].shape[:2])
        except Exception as exc:  # decord: RuntimeError when the first frame cannot be decoded
            raise VideoError(
                f"{path}: the first frame cannot be decoded ({str(exc).strip()[:200]}). "
                "Re-encode the video, e.g. `ffmpeg -i in.mp4 -c:v libx264 out.mp4`."
            ) from exc
    return _validated_info(path, frames, fps, width, height)


def _validated_info(path: Path, frames: int, fps: float, width: int, height: int) -> VideoInfo:
    if frames <= 0:
        raise VideoError(f"{path}: the video has no frames. Re-export or re-download it.")
    if not math.isfinite(fps) or fps <= 0:
        raise VideoError(
            f"{path}: the container reports fps={fps}, so frames cannot be sampled per second. "
            "Remux it with a valid frame rate, e.g. `ffmpeg -i in.mp4 -r 30 out.mp4`."
        )
    if width <= 0 or height <= 0:
        raise VideoError(f"{path}: frames have size {width}x{height}. Re-encode the video.")
    duration = frames / fps
    if duration < 1.0:
        raise VideoError(
            f"{path}: the video lasts {duration:.3f} s ({frames} frames at {fps:g} fps), shorter than one second, "
            "so there is nothing to sample at 1 fps. Drop it from the dataset."
        )
    return VideoInfo(frames=frames, fps=fps, width=width, height=height, duration=duration)


def sample_step(fps: float, sample_fps: float, rounding: str = "round") -> int:
    """Frames between two samples: ``round(fps / sample_fps)`` (half up), or ``int()`` for the official code.

    Never less than 1. ``sample_step(29.97, 1.0) == 30``; with ``rounding="floor"`` it is 29.
    """
    ratio = fps / sample_fps
    step = math.floor(ratio) if rounding == "floor" else math.floor(ratio + 0.5)
    return max(1, int(step))


def sample_indices(frames: int, fps: float, sample_fps: float, rounding: str = "round") -> list[int]:
    """Every ``sample_step``-th frame from frame 0, plus the last frame when the stride misses it.

    >>> sample_indices(95, 30.0, 1.0)
    [0, 30, 60, 90, 94]
    """
    step = sample_step(fps, sample_fps, rounding)
    indices = list(range(0, frames, step))
    if indices[-1] != frames - 1:
        indices.append(frames - 1)
    return indices


def resize_max_side(frame: np.ndarray, max_side: int | None) -> np.ndarray:
    """Shrink ``frame`` (INTER_AREA) so its longer side is at most ``max_side``; ``None`` leaves it as is."""
    if max_side is None:
        return frame
    h, w = frame.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return frame
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def iter_frames(
    path: str | Path,
    indices: Sequence[int],
    *,
    chunk: int = 32,
    num_threads: int = 1,
    max_side: int | None = None,
    timer: list[float] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index, bgr_frame)`` for ``indices`` (ascending), decoding ``chunk`` frames at a time.

    Only the requested frames are decoded (decord seeks to the nearest key frame, then decodes forward).
    The next chunk is decoded in a background thread while the caller works on the current one (decord and
    OpenCV release the GIL), so at most two chunks are in memory. When ``timer`` is given, seconds spent
    decoding are added to ``timer[0]``.
    """
    path = Path(path)
    reader = _open_reader(path, num_threads=num_threads)
    chunks = [list(indices[start : start + chunk]) for start in range(0, len(indices), chunk)]

    def decode(batch_idx: list[int]) -> tuple[list[np.ndarray], float]:
        t0 = time.perf_counter()
        try:
            batch = reader.get_batch(batch_idx).asnumpy()
        except Exception as exc:  # decord raises RuntimeError on a frame it cannot decode
            raise VideoError(
                f"{path}: decoding frames {batch_idx[0]}..{batch_idx[-1]} failed ({str(exc).strip()[:200]}). "
                "The file is probably truncated or damaged; re-encode or re-download it."
            ) from exc
        frames = [resize_max_side(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), max_side) for rgb in batch]
        return frames, time.perf_counter() - t0

    if not chunks:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as pool:
        pending = pool.submit(decode, chunks[0])
        for i, batch_idx in enumerate(chunks):
            frames, seconds = pending.result()
            if i + 1 < len(chunks):
                pending = pool.submit(decode, chunks[i + 1])
            if timer is not None:
                timer[0] += seconds
            yield from zip(batch_idx, frames, strict=True)
