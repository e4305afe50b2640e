"""Probe a video and decode only the frames the key-frame walk needs.

Decoding goes through decord (``VideoReader.get_batch``) in chunks, so memory holds at most one chunk of
frames plus the frames the caller decides to keep; the whole video is never materialised. Frames come
out as BGR ``uint8`` arrays (OpenCV's convention), so ``cv2.imwrite`` and ``cv2.cvtColor(..., BGR2GRAY)``
work on them directly.

decord already decodes the least a codec allows: for each sample it seeks to the I-frame before it, or, when
the previous sample lies in the same group of pictures, decodes forward from there; the frames in between are
decoded (later frames need them) but never converted or copied. So where the GOP is short (OpenCV's mp4v: an
I-frame every 12 frames) a 1 fps sample costs a few frames, and where it is long (x264's default: 250) every
frame is decoded anyway. :func:`decode_plan` tells the two apart from the container's I-frame index and gives
the dense case a second decoder thread (``keyframes.decode_threads: auto``); see ``docs/results.md``.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict

from embodied_r.config import KeyframesConfig

logger = logging.getLogger(__name__)


class VideoError(ValueError):
    """A video cannot be used for key-frame extraction; the message names the file and the fix.

    ``reason`` is the short machine-readable cause, the same word ingest records when it excludes the
    video's questions: ``missing_video``, ``unreadable_video``, ``no_frames`` or ``too_short``.
    """

    def __init__(self, message: str, reason: str = "unreadable_video") -> None:
        super().__init__(message)
        self.reason = reason


#: The ``VideoError.reason`` values.
VIDEO_ERROR_REASONS: tuple[str, ...] = ("missing_video", "unreadable_video", "no_frames", "too_short")


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
    """
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such file. Check the videos directory and the video id.", "missing_video")
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
        raise VideoError(f"{path}: the video has no frames. Re-export or re-download it.", "no_frames")
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
            "so there is nothing to sample at 1 fps. Drop it from the dataset.",
            "too_short",
        )
    return VideoInfo(frames=frames, fps=fps, width=width, height=height, duration=duration)


def require_samples(path: str | Path, info: VideoInfo, cfg: KeyframesConfig) -> list[int]:
    """The frames sampled from a probed video, or :class:`VideoError` (``too_short``) if fewer than ``min_frames``.

    Fewer samples than ``keyframes.min_frames`` cannot give the key-frame minimum (the clamp can only pick
    samples), and the data checks refuse a sample with fewer key frames; so key frames refuse the video
    here, and ingest excludes it by the same rule.

    >>> require_samples("clip.mp4", VideoInfo(frames=150, fps=30.0, width=64, height=48, duration=5.0),
    ...                 KeyframesConfig())
    [0, 30, 60, 90, 120, 149]
    """
    indices = sample_indices(info.frames, info.fps, cfg.sample_fps, cfg.sample_rounding)
    if len(indices) < cfg.min_frames:
        raise VideoError(
            f"{path}: the video lasts {info.duration:.2f} s ({info.frames} frames at {info.fps:g} fps), which gives "
            f"{len(indices)} samples at keyframes.sample_fps={cfg.sample_fps:g}, fewer than keyframes.min_frames="
            f"{cfg.min_frames}: too short for the key-frame minimum. Drop it from the dataset (ingest excludes it "
            "as too_short), or lower keyframes.min_frames (paper: 4).",
            "too_short",
        )
    return indices


_PROBE_CACHE: dict[tuple[str, int, int], VideoInfo | VideoError] = {}


def keyframe_refusal(path: str | Path, cfg: KeyframesConfig) -> VideoError | None:
    """Why key-frame extraction would refuse this video (:func:`probe_video`, then :func:`require_samples`), else None.

    Ingest calls this on every video so that what it accepts, key frames can process. The probe reads the
    container's frame count and rate and decodes one frame, never the whole video; it is cached per file
    (path, size, modification time), so a replaced file is probed again and a changed config costs nothing.
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return VideoError(f"{path}: no such file. Check the videos directory and the video id.", "missing_video")
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _PROBE_CACHE:
        try:
            _PROBE_CACHE[key] = probe_video(path)
        except VideoError as exc:
            _PROBE_CACHE[key] = exc
    probed = _PROBE_CACHE[key]
    if isinstance(probed, VideoError):
        return probed
    try:
        require_samples(path, probed, cfg)
    except VideoError as exc:
        return exc
    return None


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


#: Frames decoded per sampled frame from which a video counts as dense (decoded nearly whole): below it, decoding a
#: sample costs less than matching it (ORB + homography on one frame ~ 10+ decoded frames), so the background
#: decode thread is not what the walk waits for and a second decoder thread would only add CPU.
DENSE_DECODE_PER_SAMPLE = 8.0


class DecodePlan(BaseModel):
    """How :func:`iter_frames` decodes a video: ``threads`` for decord, and why (``frames_per_sample``).

    ``frames_per_sample`` is what decord decodes per requested frame: from the I-frame before it, or from the
    previous requested frame when that lies in the same group of pictures (``gop`` = mean I-frame distance).
    """

    model_config = ConfigDict(frozen=True)

    threads: int
    frames_per_sample: float
    gop: float


def frames_decoded_per_sample(key_indices: Sequence[int], indices: Sequence[int]) -> float:
    """Frames a seek-then-decode-forward reader decodes per frame of ``indices`` (ascending), given the I-frames.

    >>> frames_decoded_per_sample([0, 250], [0, 25, 50, 75])  # one GOP: decoded straight through (76 frames)
    19.0
    >>> frames_decoded_per_sample([0, 12, 24, 36], [0, 25])  # short GOPs: seek to frame 24, decode 24 and 25
    1.5
    """
    keys = sorted(key_indices) or [0]
    decoded, position = 0, -1
    for index in indices:
        key = keys[max(0, bisect.bisect_right(keys, index) - 1)]
        start = position + 1 if key <= position < index else key  # go on from the last frame, or seek
        decoded += index - start + 1
        position = index
    return decoded / max(1, len(indices))


def decode_plan(path: str | Path, indices: Sequence[int], num_threads: int | Literal["auto"] = "auto") -> DecodePlan:
    """Choose decord's threads for ``indices`` of ``path``: a number is taken as is; ``"auto"`` gives two threads
    (at most the CPUs this process may use) where the GOP forces decoding nearly every frame, one elsewhere."""
    reader = _open_reader(Path(path))
    keys = [int(k) for k in reader.get_key_indices()]
    frames = len(reader)
    per_sample = frames_decoded_per_sample(keys, indices)
    if num_threads == "auto":
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = min(2, cpus) if per_sample >= DENSE_DECODE_PER_SAMPLE else 1
    else:
        threads = int(num_threads)
    return DecodePlan(threads=threads, frames_per_sample=per_sample, gop=frames / max(1, len(keys)))


def iter_frames(
    path: str | Path,
    indices: Sequence[int],
    *,
    chunk: int = 32,
    num_threads: int | Literal["auto"] = 1,
    max_side: int | None = None,
    timer: list[float] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index, bgr_frame)`` for ``indices`` (ascending), decoding ``chunk`` frames at a time.

    Only the requested frames are decoded (decord seeks to the nearest key frame, then decodes forward).
    The next chunk is decoded in a background thread while the caller works on the current one (decord and
    OpenCV release the GIL), so at most two chunks are in memory. ``num_threads="auto"`` lets
    :func:`decode_plan` choose decord's threads for this video (the frames are the same either way). When
    ``timer`` is given, seconds spent decoding are added to ``timer[0]``.
    """
    path = Path(path)
    if num_threads == "auto":
        num_threads = decode_plan(path, indices, "auto").threads
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
