"""Key-frame selection by homography overlap (reference §1).

The algorithm, step by step:

1. Sample every ``step``-th frame from frame 0, ``step = max(1, round(fps / sample_fps))`` with round half up
   (29.97 fps -> 30); the last frame is always a sample.
2. Walk the samples. The first is a key frame (reason ``first``). Each later sample is compared with the
   **last kept key frame**: ORB (``orb_features``) on grayscale, ``BFMatcher(NORM_HAMMING, crossCheck=True)``
   matching key-frame descriptors (query) to the sample's (train), matches sorted by distance; with more
   than ``min_matches`` matches, ``findHomography(sample -> key frame, RANSAC, ransac_reproj_threshold)``.
   Overlap = area(key-frame rectangle ∩ warped sample rectangle) / image area, the intersection computed
   exactly by clipping the (convex) warped quadrilateral to the rectangle. The sample becomes a key frame when overlap
   < ``overlap_threshold`` (``low_overlap``) or when matching fails (``match_failed``, with the cause:
   ``no_descriptors``, ``too_few_matches``, ``no_homography``, ``degenerate_warp``).
3. With ``keep_last`` the last sample is a key frame too (reason ``last`` unless the walk kept it already).
4. Clamp the count to ``[min_frames, max_frames]``. Positions are chosen by ``clamp_positions``: with the
   default ``uniform`` spacing, m of n positions are ``floor(i * (n - 1) / (m - 1) + 1/2)`` for
   ``i = 0..m-1`` (exact integer arithmetic; first and last always included). Fewer than ``min_frames`` key
   frames -> ``min_frames`` positions over *all samples* (reason ``clamp_min`` for a sample the walk had not
   kept; all samples when there are no more than ``min_frames``). More than ``max_frames`` -> ``max_frames``
   positions over the key frames: the first, the last and ``max_frames - 2`` evenly between.

Differences from the official code (``train/conver_format/utils.py`` of Embodied-R.code), each a config
switch where it matters:

* step: the official code uses ``int(fps)`` (29.97 fps -> 29); the reference says ``round``. Default
  ``round``; ``sample_rounding="floor"`` restores the official behaviour.
* overlap: the official code rasterises both quadrilaterals with ``cv2.fillPoly`` on integer-truncated corners
  and counts pixels; here the intersection area is exact (reference: polygon intersection). Values differ
  by well under 1%, which can flip a decision only for overlaps within that margin of the threshold.
* degenerate warps (non-convex, self-intersecting or through the horizon): the official code fills whatever
  polygon results; here they count as a matching failure and the sample is kept (``degenerate_warp``).
* clamp spacing: the official ``constrained_sampling`` keeps the first, the last and ``1 + round(i * (n - 2)
  / (m - 2))`` — biased towards the start (10 samples, 4 frames -> 0, 1, 5, 9); the reference asks for
  uniform spacing (-> 0, 3, 6, 9). Default ``uniform``; ``clamp_spacing="official"`` restores it.
* the official code decodes every frame of the video into memory before sampling; here only the samples are
  decoded (same pixels, see ``benchmarks/keyframes.py``) — on H.264 with a long GOP every frame is still decoded,
  only not converted or kept (``docs/results.md``, key frames on real codecs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from embodied_r.config import KeyframesConfig
from embodied_r.keyframes.video import VideoInfo, iter_frames, probe_video, require_samples

logger = logging.getLogger(__name__)

Reason = Literal["first", "low_overlap", "match_failed", "last", "clamp_min"]
Failure = Literal["no_descriptors", "too_few_matches", "no_homography", "degenerate_warp"]

#: Key-frame arrays held in memory during the walk; beyond this, frames are decoded again at the end.
MAX_HELD_FACTOR = 4


class KeptFrame(BaseModel):
    """One key frame: its frame number, time, why it was kept and its overlap with the previous key frame.

    ``overlap`` is ``None`` for the first frame and when matching failed.
    """

    model_config = ConfigDict(frozen=True)

    index: int
    timestamp: float
    reason: Reason
    overlap: float | None = None
    failure: Failure | None = None


class KeyframeResult(BaseModel):
    """Everything :func:`extract_keyframes` decided about one video.

    ``frames`` holds the kept frames (BGR ``uint8``, in ``keyframes`` order) so artifacts can be written
    without decoding again; it is excluded from ``model_dump``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    video: str
    info: VideoInfo
    config: KeyframesConfig
    sample_indices: list[int]
    #: Overlap of each sample with the key frame current at that point (None: first sample or failure).
    sample_overlaps: list[float | None]
    #: Key frames chosen by the walk (with ``last``), before clamping.
    walk_indices: list[int]
    keyframes: list[KeptFrame]
    clamped: Literal["min", "max"] | None = None
    decode_seconds: float = 0.0
    match_seconds: float = 0.0
    frames: list[np.ndarray] = Field(default_factory=list, exclude=True, repr=False)

    @property
    def indices(self) -> list[int]:
        """Key-frame numbers in the video, ascending."""
        return [k.index for k in self.keyframes]

    @property
    def timestamps(self) -> list[float]:
        """Key-frame times in seconds (``index / fps``)."""
        return [k.timestamp for k in self.keyframes]


# --- geometry -------------------------------------------------------------------------------------------


def warped_overlap(homography: np.ndarray, width: int, height: int) -> float | None:
    """Area of (image rectangle ∩ rectangle warped by ``homography``) / image area.

    ``None`` when the warp is degenerate: a corner maps through the horizon, the warped quadrilateral is
    not convex (or self-intersects), or it has no area.
    """
    h = np.asarray(homography, dtype=np.float64)
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
    denominators = np.c_[corners, np.ones(4)] @ h[2]
    if not (np.all(denominators > 0) or np.all(denominators < 0)):
        return None
    warped = cv2.perspectiveTransform(corners.reshape(-1, 1, 2), h).reshape(-1, 2)
    if not np.all(np.isfinite(warped)):
        return None
    x, y = warped[:, 0], warped[:, 1]
    signed_area = 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    if abs(signed_area) < 1e-6 or not cv2.isContourConvex(warped.astype(np.float32)):
        return None
    clipped = _clip_to_rectangle(warped, width, height)
    if len(clipped) < 3:
        return 0.0
    cx, cy = clipped[:, 0], clipped[:, 1]
    area = 0.5 * abs(float(np.dot(cx, np.roll(cy, -1)) - np.dot(cy, np.roll(cx, -1))))
    return min(1.0, area / float(width * height))


def _clip_to_rectangle(polygon: np.ndarray, width: float, height: float) -> np.ndarray:
    """Clip a convex polygon (N x 2) to [0, width] x [0, height], one half-plane at a time.

    Exact for coincident edges (a static camera gives the identity), unlike ``cv2.intersectConvexConvex``,
    which returns wrong areas when the two polygons share edges.
    """
    # half-planes as (a, b, c): a*x + b*y + c >= 0 is inside
    for a, b, c in ((1.0, 0.0, 0.0), (-1.0, 0.0, width), (0.0, 1.0, 0.0), (0.0, -1.0, height)):
        if len(polygon) == 0:
            break
        dist = polygon[:, 0] * a + polygon[:, 1] * b + c
        nxt = np.roll(polygon, -1, axis=0)
        nxt_dist = np.roll(dist, -1)
        out = []
        for p, q, dp, dq in zip(polygon, nxt, dist, nxt_dist, strict=True):
            if dp >= 0:
                out.append(p)
            if (dp >= 0) != (dq >= 0):  # the edge p -> q crosses the boundary
                out.append(p + (q - p) * (dp / (dp - dq)))
        polygon = np.array(out, dtype=np.float64).reshape(-1, 2)
    return polygon


# --- walk -----------------------------------------------------------------------------------------------


@dataclass
class _Features:
    keypoints: tuple
    descriptors: np.ndarray | None


@dataclass
class Selection:
    """Output of :func:`select_keyframes`: positions are frame numbers; ``held`` maps them to frames."""

    sample_indices: list[int] = field(default_factory=list)
    sample_overlaps: list[float | None] = field(default_factory=list)
    walk: list[tuple[int, Reason, float | None, Failure | None]] = field(default_factory=list)
    kept: list[tuple[int, Reason, float | None, Failure | None]] = field(default_factory=list)
    clamped: Literal["min", "max"] | None = None
    held: dict[int, np.ndarray] = field(default_factory=dict)
    match_seconds: float = 0.0


def _compare(
    key: _Features, cur: _Features, matcher: cv2.BFMatcher, cfg: KeyframesConfig, width: int, height: int
) -> tuple[float | None, Failure | None]:
    if key.descriptors is None or cur.descriptors is None:
        return None, "no_descriptors"
    matches = sorted(matcher.match(key.descriptors, cur.descriptors), key=lambda m: m.distance)
    if len(matches) <= cfg.min_matches:
        return None, "too_few_matches"
    key_pts = np.float32([key.keypoints[m.queryIdx].pt for m in matches]).reshape(-1, 1, 2)
    cur_pts = np.float32([cur.keypoints[m.trainIdx].pt for m in matches]).reshape(-1, 1, 2)
    homography, _ = cv2.findHomography(cur_pts, key_pts, cv2.RANSAC, cfg.ransac_reproj_threshold)
    if homography is None:
        return None, "no_homography"
    overlap = warped_overlap(homography, width, height)
    if overlap is None:
        return None, "degenerate_warp"
    return overlap, None


def clamp_positions(n: int, m: int, spacing: str = "uniform") -> list[int]:
    """Choose ``m`` of the positions ``0..n-1`` spread over the range, always with the first and the last.

    ``uniform``: ``floor(i * (n - 1) / (m - 1) + 1/2)`` for ``i = 0..m-1``. ``official``: the official
    ``constrained_sampling`` (first, last, ``1 + round(i * (n - 2) / (m - 2))`` with Python's round).
    When ``n <= m`` all positions are returned.

    >>> clamp_positions(10, 4)
    [0, 3, 6, 9]
    >>> clamp_positions(10, 4, "official")
    [0, 1, 5, 9]
    """
    if n <= m:
        return list(range(n))
    if m == 1:
        return [0]
    if spacing == "official":
        if m == 2:
            return [0, n - 1]
        step = (n - 2) / (m - 2)
        return [0, *[round(i * step) + 1 for i in range(m - 2)], n - 1]
    return [(2 * i * (n - 1) + (m - 1)) // (2 * (m - 1)) for i in range(m)]


def select_keyframes(
    samples: Iterable[tuple[int, np.ndarray]],
    cfg: KeyframesConfig,
    *,
    hold: Collection[int] = (),
) -> Selection:
    """Walk ``(frame_index, bgr_frame)`` samples (ascending) and clamp the key frames (module docstring).

    Frames of key frames and of the indices in ``hold`` are kept in ``Selection.held`` (up to
    ``MAX_HELD_FACTOR * max_frames`` key frames), so the caller can use them without decoding again.
    Each sample's ORB features are computed once; the key frame's are reused for every comparison.
    """
    orb = cv2.ORB_create(nfeatures=cfg.orb_features)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    sel = Selection()
    max_held = MAX_HELD_FACTOR * cfg.max_frames
    key: _Features | None = None
    last_frame: np.ndarray | None = None
    hold = set(hold)
    for index, frame in samples:
        t0 = time.perf_counter()
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        height, width = gray.shape
        keypoints, descriptors = orb.detectAndCompute(gray, None)
        cur = _Features(keypoints, descriptors)
        if key is None:
            overlap, failure, reason = None, None, "first"
        else:
            overlap, failure = _compare(key, cur, matcher, cfg, width, height)
            if failure is not None:
                reason = "match_failed"
            elif overlap < cfg.overlap_threshold:
                reason = "low_overlap"
            else:
                reason = None
        sel.match_seconds += time.perf_counter() - t0
        sel.sample_indices.append(index)
        sel.sample_overlaps.append(overlap)
        if reason is not None:
            key = cur
            sel.walk.append((index, reason, overlap, failure))
            if len(sel.walk) <= max_held:
                sel.held[index] = frame
        if index in hold:
            sel.held[index] = frame
        last_frame = frame
    if not sel.sample_indices:
        raise ValueError("select_keyframes needs at least one sample")
    last = sel.sample_indices[-1]
    if cfg.keep_last and sel.walk[-1][0] != last:
        sel.walk.append((last, "last", sel.sample_overlaps[-1], None))
        sel.held[last] = last_frame
    sel.kept, sel.clamped = _clamp(sel, cfg)
    return sel


def _clamp(sel: Selection, cfg: KeyframesConfig):
    walk = sel.walk
    if len(walk) < cfg.min_frames:
        by_index = {entry[0]: entry for entry in walk}
        positions = clamp_positions(len(sel.sample_indices), cfg.min_frames, cfg.clamp_spacing)
        kept = []
        for p in positions:
            index = sel.sample_indices[p]
            kept.append(by_index.get(index, (index, "clamp_min", sel.sample_overlaps[p], None)))
        return kept, "min"
    if len(walk) > cfg.max_frames:
        return [walk[p] for p in clamp_positions(len(walk), cfg.max_frames, cfg.clamp_spacing)], "max"
    return list(walk), None


def min_clamp_candidates(indices: list[int], cfg: KeyframesConfig) -> list[int]:
    """Frame numbers a ``min_frames`` clamp would pick from the samples (worth holding during the walk)."""
    return [indices[p] for p in clamp_positions(len(indices), cfg.min_frames, cfg.clamp_spacing)]


# --- entry point ----------------------------------------------------------------------------------------


def extract_keyframes(video_path: str | Path, cfg: KeyframesConfig | None = None) -> KeyframeResult:
    """Select the key frames of one video; the result also holds the kept frames (``result.frames``).

    Raises :class:`~embodied_r.keyframes.video.VideoError` for a video that cannot be used: unreadable, no
    frames, or too short to give ``min_frames`` samples (the rule ingest applies, see ``keyframe_refusal``).
    """
    cfg = cfg or KeyframesConfig()
    video_path = Path(video_path)
    info = probe_video(video_path)
    indices = require_samples(video_path, info, cfg)
    timer = [0.0]
    frames = iter_frames(
        video_path,
        indices,
        chunk=cfg.decode_chunk,
        num_threads=cfg.decode_threads,
        max_side=cfg.max_side,
        timer=timer,
    )
    sel = select_keyframes(frames, cfg, hold=min_clamp_candidates(indices, cfg))
    if sel.sample_indices != indices:
        raise RuntimeError(f"{video_path}: decoded {len(sel.sample_indices)} of {len(indices)} samples")
    kept_indices = [entry[0] for entry in sel.kept]
    missing = [i for i in kept_indices if i not in sel.held]
    if missing:  # only when the walk kept more key frames than it could hold
        logger.debug("%s: decoding %d key frames again", video_path, len(missing))
        sel.held.update(
            iter_frames(
                video_path,
                missing,
                chunk=cfg.decode_chunk,
                num_threads=cfg.decode_threads,
                max_side=cfg.max_side,
                timer=timer,
            )
        )
    keyframes = [
        KeptFrame(index=i, timestamp=i / info.fps, reason=reason, overlap=overlap, failure=failure)
        for i, reason, overlap, failure in sel.kept
    ]
    result = KeyframeResult(
        video=str(video_path),
        info=info,
        config=cfg,
        sample_indices=sel.sample_indices,
        sample_overlaps=sel.sample_overlaps,
        walk_indices=[entry[0] for entry in sel.walk],
        keyframes=keyframes,
        clamped=sel.clamped,
        decode_seconds=timer[0],
        match_seconds=sel.match_seconds,
        frames=[sel.held[i] for i in kept_indices],
    )
    logger.info(
        "%s: %d samples -> %d walk key frames -> %d kept%s (decode %.2fs, match %.2fs)",
        video_path.name,
        len(indices),
        len(result.walk_indices),
        len(keyframes),
        f" (clamped to {sel.clamped})" if sel.clamped else "",
        result.decode_seconds,
        result.match_seconds,
    )
    return result
