"""An independent, straightforward key-frame extractor written from reference §1, to check the library.

Deliberately different from the library where it can be: every frame decoded with cv2.VideoCapture (the official
approach's decoder, shared with ``benchmarks/keyframes.py``), overlap by Sutherland–Hodgman clipping in numpy (no
OpenCV polygon code), convexity by edge cross products, clamping by exact fractions.
"""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np

from benchmarks.keyframes import decode_all


def clip_polygon(subject: np.ndarray, width: float, height: float) -> np.ndarray:
    """Sutherland–Hodgman: clip ``subject`` (N x 2) to the rectangle [0, width] x [0, height]."""
    poly = [tuple(p) for p in subject]
    # each edge: (inside test, intersection with the boundary line)
    edges = [(0, 0.0, True), (0, width, False), (1, 0.0, True), (1, height, False)]
    for axis, bound, keep_greater in edges:

        def inside(p, axis=axis, bound=bound, keep_greater=keep_greater):
            return p[axis] >= bound if keep_greater else p[axis] <= bound

        def cross(p, q, axis=axis, bound=bound):
            t = (bound - p[axis]) / (q[axis] - p[axis])
            return (p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]))

        out = []
        for i, cur in enumerate(poly):
            prev = poly[i - 1]
            if inside(cur):
                if not inside(prev):
                    out.append(cross(prev, cur))
                out.append(cur)
            elif inside(prev):
                out.append(cross(prev, cur))
        poly = out
        if not poly:
            break
    return np.array(poly, dtype=np.float64).reshape(-1, 2)


def polygon_area(poly: np.ndarray) -> float:
    if len(poly) < 3:
        return 0.0
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def overlap_or_none(h: np.ndarray, width: int, height: int) -> float | None:
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
    homog = np.c_[corners, np.ones(4)] @ h.T
    w = homog[:, 2]
    if not (np.all(w > 0) or np.all(w < 0)):
        return None
    quad = homog[:, :2] / w[:, None]
    edges = np.roll(quad, -1, axis=0) - quad
    turns = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    if not (np.all(turns > 0) or np.all(turns < 0)):
        return None
    return polygon_area(clip_polygon(quad, width, height)) / (width * height)


def spread(n: int, m: int) -> list[int]:
    if n <= m:
        return list(range(n))
    return [int(Fraction(i * (n - 1), m - 1) + Fraction(1, 2)) for i in range(m)]


def reference_keyframes(path, *, nfeatures=500, min_matches=10, thresh=5.0, overlap=0.5, lo=4, hi=32) -> list[int]:
    frames, fps = decode_all(path)
    step = max(1, int(np.floor(fps + 0.5)))
    idx = list(range(0, len(frames), step))
    if idx[-1] != len(frames) - 1:
        idx.append(len(frames) - 1)
    orb = cv2.ORB_create(nfeatures)
    bf = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    feats = [orb.detectAndCompute(cv2.cvtColor(frames[i], cv2.COLOR_BGR2GRAY), None) for i in idx]
    height, width = frames[0].shape[:2]
    keys = [0]  # positions in idx
    for t in range(1, len(idx)):
        kp0, d0 = feats[keys[-1]]
        kp1, d1 = feats[t]
        keep = True
        if d0 is not None and d1 is not None:
            matches = sorted(bf.match(d0, d1), key=lambda m: m.distance)
            if len(matches) > min_matches:
                src = np.float32([kp0[m.queryIdx].pt for m in matches]).reshape(-1, 1, 2)
                dst = np.float32([kp1[m.trainIdx].pt for m in matches]).reshape(-1, 1, 2)
                h, _ = cv2.findHomography(dst, src, cv2.RANSAC, thresh)
                if h is not None:
                    ov = overlap_or_none(h, width, height)
                    keep = ov is None or ov < overlap
        if keep:
            keys.append(t)
    if keys[-1] != len(idx) - 1:
        keys.append(len(idx) - 1)
    if len(keys) < lo:
        keys = spread(len(idx), lo)
    elif len(keys) > hi:
        keys = [keys[p] for p in spread(len(keys), hi)]
    return [idx[p] for p in keys]
