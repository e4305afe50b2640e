"""Benchmark: the project's key-frame extractor against the official approach on the same videos.

(a) project: ``extract_keyframes`` — decord decodes only the ~1 fps samples, in chunks, with the decoder threads
    ``keyframes.decode_threads`` asks for (``auto``: 2 where the GOP forces decoding nearly every frame, else 1).
(b) official approach: decode EVERY frame with ``cv2.VideoCapture`` into memory (as the official
    ``downsample_video`` does), then sample and select with the same algorithm (``select_keyframes``).
(c) the project's previous decode path (one decoder thread), to measure the change against.

All must give identical key-frame indices; the target is (a) at least 3x faster than (b). The default videos are
like the benchmarks' (854x480): H.264 at 29.97 fps with x264's default GOP of 250 (libx264 from the ffmpeg binary
of ``imageio-ffmpeg``, a dev dependency: OpenCV's wheel cannot encode H.264), and mp4v at 25 and 60 fps written
by OpenCV (an I-frame every 12 frames). Times are the median over interleaved rounds, ratios per round with their
range; CPU seconds (all threads) are given too because the machine may be shared.

    .venv/bin/python benchmarks/keyframes.py                    # 6 videos of 20-40 s: H.264, mp4v 25 fps, 60 fps
    .venv/bin/python benchmarks/keyframes.py --breakdown        # + where the decoding time goes, per video
    .venv/bin/python benchmarks/keyframes.py --set synthetic    # the former set: 640x480 30 fps mp4v
    .venv/bin/python benchmarks/keyframes.py --videos DIR       # every *.mp4 / *.avi / *.mkv / *.mov in DIR
"""

from __future__ import annotations

import argparse
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from embodied_r.config import KeyframesConfig
from embodied_r.keyframes import extract_keyframes, sample_indices, select_keyframes
from embodied_r.keyframes.synthetic import Motion, pan, random_texture, render_frame, static, write_video
from embodied_r.keyframes.video import decode_plan, iter_frames, probe_video

SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm"}
#: The benchmarks' frame size, and the codecs cycled through by the default set: (codec, fps).
SIZE = (854, 480)
CODECS = (("h264", 30000 / 1001), ("mp4v", 25.0), ("mp4v", 60.0))


def _motion(kind: int, rng: np.random.Generator, frames: int, fps: float) -> tuple[Motion, str]:
    """Static, slow pan, fast pan or rotation; speeds are per 1/30 s, so a 60 fps video moves as a 30 fps one."""
    per_frame = 30.0 / fps
    if kind == 0:
        return static(2000, 1200), "static"
    if kind == 1:
        speed = float(rng.uniform(0.5, 2.0))
        return pan(speed * per_frame, cx=400, cy=1200), f"pan{speed:.1f}"
    if kind == 2:
        speed = min(float(rng.uniform(3.0, 8.0)), 3000 / frames / per_frame)
        return pan(speed * per_frame, cx=400, cy=1200), f"fastpan{speed:.1f}"
    turn = float(rng.uniform(0.2, 0.8))
    return pan(0.5 * per_frame, cx=800, cy=1200, angle_per_frame=turn * per_frame), f"rotate{turn:.1f}"


def make_videos(root: Path, n: int, seed: int = 0, seconds: int | None = None) -> list[Path]:
    """``n`` synthetic 640x480 30 fps mp4v videos of 20-40 s (or ``seconds`` each): the former default set."""
    rng = np.random.default_rng(seed)
    texture = random_texture(4000, 2400, seed=seed)
    paths = []
    for i in range(n):
        drawn = int(rng.integers(20, 41))  # drawn either way: the videos' motions do not depend on ``seconds``
        length = seconds or drawn
        frames = length * 30
        motion, label = _motion(i % 4, rng, frames, 30.0)
        path = root / f"bench_{i:02d}_{label}_{length}s.mp4"
        write_video(path, motion, frames=frames, fps=30.0, size=(640, 480), texture=texture)
        paths.append(path)
    return paths


def h264_encoder() -> str | None:
    """The ffmpeg binary with libx264 that ``imageio-ffmpeg`` ships, or None when it is not installed."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    return imageio_ffmpeg.get_ffmpeg_exe()


def write_h264(
    path: Path,
    motion: Motion,
    *,
    frames: int,
    fps: float,
    size: tuple[int, int],
    texture: np.ndarray,
    gop: int = 250,
) -> Path:
    """Encode ``frames`` rendered frames as H.264 (libx264, preset medium: B-frames, an I-frame every ``gop``)."""
    ffmpeg = h264_encoder()
    if ffmpeg is None:
        raise RuntimeError("no H.264 encoder: OpenCV's wheel has none; install imageio-ffmpeg (pip install -e .[dev])")
    rate = "30000/1001" if abs(fps - 30000 / 1001) < 1e-6 else f"{fps:g}"
    argv = [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{size[0]}x{size[1]}", "-r", rate, "-i", "-",
        "-c:v", "libx264", "-preset", "medium", "-crf", "23", "-g", str(gop), "-pix_fmt", "yuv420p", str(path),
    ]  # fmt: skip
    with subprocess.Popen(argv, stdin=subprocess.PIPE) as proc:
        assert proc.stdin is not None
        for i in range(frames):
            proc.stdin.write(render_frame(texture, motion(i), size).tobytes())
        proc.stdin.close()
        if proc.wait(timeout=600) != 0:
            raise RuntimeError(f"ffmpeg could not encode {path}")
    return path


def make_codec_videos(root: Path, n: int, seed: int = 0, seconds: int | None = None) -> list[Path]:
    """``n`` benchmark-like 854x480 videos of 20-40 s (or ``seconds``), cycling H.264 29.97 fps, mp4v 25, mp4v 60.

    Without an H.264 encoder (``imageio-ffmpeg`` missing) the H.264 videos are left out, with a message.
    """
    rng = np.random.default_rng(seed)
    texture = random_texture(4000, 2400, seed=seed)
    codecs = CODECS
    if h264_encoder() is None:
        print("no H.264 encoder here (OpenCV's wheel has none, imageio-ffmpeg is not installed): mp4v only")
        codecs = tuple(c for c in CODECS if c[0] != "h264")
    paths = []
    for i in range(n):
        codec, fps = codecs[i % len(codecs)]
        length = seconds or int(rng.integers(20, 41))
        frames = int(length * fps)
        motion, label = _motion((i + 1) % 4, rng, frames, fps)
        path = root / f"{i:02d}_{codec}_{fps:.4g}fps_{label}_{length}s.mp4"
        if codec == "h264":
            write_h264(path, motion, frames=frames, fps=fps, size=SIZE, texture=texture)
        else:
            write_video(path, motion, frames=frames, fps=fps, size=SIZE, texture=texture)
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


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process: decoder threads included
    return usage.ru_utime + usage.ru_stime


def interleaved(variants: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[tuple[float, float]]]:
    """Run every variant once per round, in turn, ``rounds`` times: ``{name: [(wall s, cpu s), ...]}``."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(max(1, rounds)):
        for name, run in variants.items():
            t0, c0 = time.perf_counter(), _cpu()
            run()
            times[name].append((time.perf_counter() - t0, _cpu() - c0))
    return times


def ratio(slow: list[tuple[float, float]], fast: list[tuple[float, float]], which: int = 0) -> str:
    """Per-round ratio slow/fast of wall (``which=0``) or CPU (1) seconds: ``median [min, max]``."""
    values = sorted(s[which] / max(f[which], 1e-9) for s, f in zip(slow, fast, strict=True))
    return f"{statistics.median(values):.2f} [{values[0]:.2f}, {values[-1]:.2f}]"


def median(samples: list[tuple[float, float]], which: int = 0) -> float:
    return statistics.median(s[which] for s in samples)


def _drain(path: Path, indices: list[int], threads: int) -> None:
    for _ in iter_frames(path, indices, num_threads=threads):
        pass


def _grab_all(path: Path) -> None:
    """Decode every frame without converting it (``grab``): the decoder's own cost for the whole video."""
    cap = cv2.VideoCapture(str(path))
    while cap.grab():
        pass
    cap.release()


def breakdown(path: Path, cfg: KeyframesConfig, rounds: int) -> None:
    """Where decoding time goes for one video: full decode, sampled decode (1 and 2 threads), seek, frames decoded."""
    info = probe_video(path)
    indices = sample_indices(info.frames, info.fps, cfg.sample_fps, cfg.sample_rounding)
    plan = decode_plan(path, indices, cfg.decode_threads)
    import decord

    keys = [int(k) for k in decord.VideoReader(str(path), num_threads=1).get_key_indices()]
    seek_to = keys[len(keys) // 2]
    times = interleaved(
        {
            "full decode, convert, keep (official)": lambda: decode_all(path),
            "full decode, no convert (cv2 grab)": lambda: _grab_all(path),
            "sampled, 1 thread (old path)": lambda: _drain(path, indices, 1),
            "sampled, 2 threads": lambda: _drain(path, indices, 2),
            "one seek + I-frame": lambda: _drain(path, [seek_to], 1),
        },
        rounds,
    )
    print(
        f"  {path.name}: {info.frames} frames, {len(keys)} I-frames (GOP {plan.gop:.0f}), {len(indices)} samples, "
        f"{plan.frames_per_sample:.1f} frames decoded per sample -> {plan.threads} thread(s) with "
        f"decode_threads={cfg.decode_threads}"
    )
    base = times["sampled, 1 thread (old path)"]
    for name, samples in times.items():
        print(
            f"    {name:<38} wall {median(samples):6.3f}s cpu {median(samples, 1):6.3f}s "
            f"({1000 * median(samples, 1) / info.frames:5.2f} ms cpu/frame of the video)  "
            f"old path / this: wall {ratio(base, samples)}"
        )


def time_video(
    path: Path, cfg: KeyframesConfig, old: KeyframesConfig, rounds: int
) -> tuple[dict[str, list[tuple[float, float]]], dict[str, object]]:
    """Project (``cfg``), official approach and the old decode path (``old``) on one video, interleaved."""
    results: dict[str, object] = {}

    def run(key: str, fn: Callable[[], object]) -> Callable[[], None]:
        return lambda: results.__setitem__(key, fn())

    times = interleaved(
        {
            "new": run("new", lambda: extract_keyframes(path, cfg)),
            "official": run("official", lambda: official_approach(path, cfg)),
            "old": run("old", lambda: extract_keyframes(path, old)),
        },
        rounds,
    )
    return times, results


def summed_rounds(videos: list[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    """Per round, the (wall, cpu) seconds summed over the videos: the whole set's time in that round."""
    return [(sum(v[0] for v in r), sum(v[1] for v in r)) for r in zip(*videos, strict=True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, help="directory of videos (default: generate them)")
    parser.add_argument(
        "--set", choices=("codecs", "synthetic"), default="codecs", help="generated set: codecs (default) | synthetic"
    )
    parser.add_argument("--n", type=int, default=6, help="number of videos (generated, or the first N of DIR)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds per video; medians count")
    parser.add_argument("--seconds", type=int, default=None, help="length of each generated video (default 20-40 s)")
    parser.add_argument("--breakdown", action="store_true", help="also show where decoding time goes, per video")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cfg = KeyframesConfig(decode_threads="auto")
    old = cfg.model_copy(update={"decode_threads": 1})  # the decode path before decode_threads: auto

    with tempfile.TemporaryDirectory(prefix="kf-bench-") as tmp:
        if args.videos is None:
            t0 = time.perf_counter()
            make = make_codec_videos if args.set == "codecs" else make_videos
            paths = make(Path(tmp), args.n, seconds=args.seconds)
            print(f"generated {len(paths)} {args.set} videos in {time.perf_counter() - t0:.1f}s ({tmp})")
        else:
            paths = sorted(p for p in args.videos.iterdir() if p.suffix.lower() in SUFFIXES)[: args.n]
        if not paths:
            print("no videos found", file=sys.stderr)
            return 2

        print(
            f"{'video':<36} {'frames':>6} {'thr':>3} {'kept':>4} {'same':>4} {'project s':>9} {'cpu':>5} "
            f"{'official s':>10} {'cpu':>5} {'speed-up':>8} {'old path s':>10}  old/new wall [range]"
        )
        extract_keyframes(paths[0], old)  # untimed: lazy imports and OpenCV's first calls
        totals = {"new": [0.0, 0.0], "official": [0.0, 0.0], "old": [0.0, 0.0]}
        all_same = True
        rounds: dict[str, list[list[tuple[float, float]]]] = {"new": [], "old": []}
        for path in paths:
            times, results = time_video(path, cfg, old, args.repeat)
            new = results["new"]
            same = results["official"] == new.indices == results["old"].indices
            all_same &= same
            for key in totals:
                totals[key][0] += median(times[key])
                totals[key][1] += median(times[key], 1)
            rounds["new"].append(times["new"])
            rounds["old"].append(times["old"])
            threads = decode_plan(path, new.sample_indices, cfg.decode_threads).threads
            print(
                f"{path.name[:36]:<36} {new.info.frames:>6} {threads:>3} {len(new.indices):>4} "
                f"{'yes' if same else 'NO':>4} {median(times['new']):>9.2f} {median(times['new'], 1):>5.2f} "
                f"{median(times['official']):>10.2f} {median(times['official'], 1):>5.2f} "
                f"{median(times['official']) / median(times['new']):>7.1f}x {median(times['old']):>10.2f}  "
                f"{ratio(times['old'], times['new'])}"
            )
        per_round = {key: summed_rounds(videos) for key, videos in rounds.items()}
        print(
            f"TOTAL {len(paths)} videos: identical indices {'yes' if all_same else 'NO'}; "
            f"project {totals['new'][0]:.2f}s (cpu {totals['new'][1]:.2f}s), official {totals['official'][0]:.2f}s "
            f"(cpu {totals['official'][1]:.2f}s), speed-up {totals['official'][0] / totals['new'][0]:.1f}x "
            f"(cpu {totals['official'][1] / totals['new'][1]:.1f}x); old decode path {totals['old'][0]:.2f}s "
            f"(cpu {totals['old'][1]:.2f}s), old/new per round: wall {ratio(per_round['old'], per_round['new'])}, "
            f"cpu {ratio(per_round['old'], per_round['new'], 1)}"
        )
        if args.breakdown:
            print("where the decoding time goes (medians over interleaved rounds):")
            for path in paths:
                breakdown(path, cfg, args.repeat)
    return 0 if all_same else 1


if __name__ == "__main__":
    sys.exit(main())
