"""Benchmark: the project's key-frame extractor against the official approach on the same videos.

(a) project: ``extract_keyframes`` — decord decodes only the ~1 fps samples, in chunks.
(b) official approach: decode EVERY frame with ``cv2.VideoCapture`` into memory (as the official
    ``downsample_video`` does), then sample and select with the same algorithm (``select_keyframes``).

Both must give identical key-frame indices; the target is (a) at least 3x faster than (b).

    .venv/bin/python benchmarks/keyframes.py                 # ~10 synthetic 640x480 30 fps videos of 20-40 s
    .venv/bin/python benchmarks/keyframes.py --videos DIR    # every *.mp4 / *.avi / *.mkv / *.mov in DIR
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from embodied_r.config import KeyframesConfig
from embodied_r.keyframes import extract_keyframes, sample_indices, select_keyframes
from embodied_r.keyframes.synthetic import pan, random_texture, static, write_video

SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm"}


def make_videos(root: Path, n: int, seed: int = 0, seconds: int | None = None) -> list[Path]:
    """``n`` synthetic 640x480 30 fps videos of 20-40 s (or ``seconds`` each): static, slow/fast pans, rotations."""
    rng = np.random.default_rng(seed)
    texture = random_texture(4000, 2400, seed=seed)
    paths = []
    for i in range(n):
        drawn = int(rng.integers(20, 41))  # drawn either way: the videos' motions do not depend on ``seconds``
        length = seconds or drawn
        frames = length * 30
        kind = i % 4
        if kind == 0:
            motion, label = static(2000, 1200), "static"
        elif kind == 1:
            speed = float(rng.uniform(0.5, 2.0))
            motion, label = pan(speed, cx=400, cy=1200), f"pan{speed:.1f}"
        elif kind == 2:
            speed = min(float(rng.uniform(3.0, 8.0)), 3000 / frames)
            motion, label = pan(speed, cx=400, cy=1200), f"fastpan{speed:.1f}"
        else:
            turn = float(rng.uniform(0.2, 0.8))
            motion, label = pan(0.5, cx=800, cy=1200, angle_per_frame=turn), f"rotate{turn:.1f}"
        path = root / f"bench_{i:02d}_{label}_{length}s.mp4"
        write_video(path, motion, frames=frames, fps=30.0, size=(640, 480), texture=texture)
        paths.append(path)
    return paths


def decode_all(path: Path | str) -> tuple[list[np.ndarray], float]:
    """Every frame of ``path`` decoded with ``cv2.VideoCapture`` into memory, and its fps: the official
    ``downsample_video``'s decoding (the tests' independent reference extractor decodes with it too)."""
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames, fps


def official_approach(path: Path, cfg: KeyframesConfig) -> list[int]:
    """Decode every frame into memory with OpenCV, then sample and select with the same algorithm."""
    frames, fps = decode_all(path)
    indices = sample_indices(len(frames), fps, cfg.sample_fps, cfg.sample_rounding)
    selection = select_keyframes(((i, frames[i]) for i in indices), cfg)
    return [entry[0] for entry in selection.kept]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, help="directory of videos (default: generate synthetic ones)")
    parser.add_argument("--n", type=int, default=10, help="number of videos (generated, or the first N of DIR)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per video and approach; the fastest counts")
    parser.add_argument("--seconds", type=int, default=None, help="length of each generated video (default 20-40 s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cfg = KeyframesConfig()

    with tempfile.TemporaryDirectory(prefix="kf-bench-") as tmp:
        if args.videos is None:
            t0 = time.perf_counter()
            paths = make_videos(Path(tmp), args.n, seconds=args.seconds)
            print(f"generated {len(paths)} synthetic videos in {time.perf_counter() - t0:.1f}s ({tmp})")
        else:
            paths = sorted(p for p in args.videos.iterdir() if p.suffix.lower() in SUFFIXES)[: args.n]
        if not paths:
            print("no videos found", file=sys.stderr)
            return 2

        header = f"{'video':<32} {'frames':>6} {'kept':>4} {'same':>4} {'project s':>9} {'decode':>6} {'match':>6}"
        print(header + f" {'official s':>10} {'ratio':>6}")
        total_a = total_b = 0.0
        all_same = True
        for path in paths:
            t_a = t_b = float("inf")
            for _ in range(max(1, args.repeat)):  # best of N: the machine may be shared
                t0 = time.perf_counter()
                result = extract_keyframes(path, cfg)
                t_a = min(t_a, time.perf_counter() - t0)
                t0 = time.perf_counter()
                official = official_approach(path, cfg)
                t_b = min(t_b, time.perf_counter() - t0)
            same = official == result.indices
            all_same &= same
            total_a += t_a
            total_b += t_b
            print(
                f"{path.name[:32]:<32} {result.info.frames:>6} {len(result.indices):>4} {'yes' if same else 'NO':>4} "
                f"{t_a:>9.2f} {result.decode_seconds:>6.2f} {result.match_seconds:>6.2f} {t_b:>10.2f} "
                f"{t_b / t_a:>5.1f}x"
            )
        print(
            f"TOTAL {len(paths)} videos: identical indices {'yes' if all_same else 'NO'}; "
            f"project {total_a:.2f}s, official {total_b:.2f}s, speed-up {total_b / total_a:.1f}x"
        )
    return 0 if all_same else 1


if __name__ == "__main__":
    sys.exit(main())
