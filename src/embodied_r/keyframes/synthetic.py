"""Synthetic videos with known camera motion, for tests and the benchmark.

A large random texture (shapes, lines and a colour gradient: plenty of ORB corners) is filmed by a virtual
camera that pans, rotates or stands still; each frame is an affine crop of the texture.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

#: camera pose at frame i: (centre x, centre y, rotation in degrees) in texture pixels
Motion = Callable[[int], tuple[float, float, float]]


def random_texture(width: int = 3000, height: int = 2000, seed: int = 0) -> np.ndarray:
    """A BGR texture of random filled shapes and lines over a smooth gradient."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [128 + 60 * np.sin(xx / 211.0), 128 + 60 * np.cos(yy / 157.0), 128 + 60 * np.sin((xx + yy) / 331.0)],
        axis=-1,
    ).astype(np.uint8)
    n_shapes = width * height // 2500
    for _ in range(n_shapes):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        kind = rng.integers(0, 3)
        if kind == 0:
            w, h = (int(v) for v in rng.integers(6, 40, 2))
            cv2.rectangle(base, (x, y), (x + w, y + h), color, -1)
        elif kind == 1:
            cv2.circle(base, (x, y), int(rng.integers(4, 25)), color, -1)
        else:
            x2, y2 = x + int(rng.integers(-60, 60)), y + int(rng.integers(-60, 60))
            cv2.line(base, (x, y), (x2, y2), color, int(rng.integers(1, 4)))
    return base


def render_frame(texture: np.ndarray, pose: tuple[float, float, float], size: tuple[int, int]) -> np.ndarray:
    """The ``size=(width, height)`` view of ``texture`` centred at ``pose[:2]``, rotated by ``pose[2]`` degrees."""
    cx, cy, angle = pose
    w, h = size
    m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    m[0, 2] += w / 2 - cx
    m[1, 2] += h / 2 - cy
    return cv2.warpAffine(texture, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def write_video(
    path: str | Path,
    motion: Motion,
    *,
    frames: int,
    fps: float = 30.0,
    size: tuple[int, int] = (320, 240),
    texture: np.ndarray | None = None,
    fourcc: str = "mp4v",
) -> Path:
    """Write a video of ``frames`` frames following ``motion``; returns the path."""
    path = Path(path)
    texture = random_texture() if texture is None else texture
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"cv2.VideoWriter cannot write {fourcc!r} to {path}")
    try:
        for i in range(frames):
            writer.write(render_frame(texture, motion(i), size))
    finally:
        writer.release()
    return path


def static(cx: float = 1500, cy: float = 1000) -> Motion:
    """A camera that does not move."""
    return lambda i: (cx, cy, 0.0)


def pan(px_per_frame: float, *, cx: float = 400, cy: float = 1000, angle_per_frame: float = 0.0) -> Motion:
    """A camera panning right by ``px_per_frame`` (and optionally rotating)."""
    return lambda i: (cx + px_per_frame * i, cy, angle_per_frame * i)
