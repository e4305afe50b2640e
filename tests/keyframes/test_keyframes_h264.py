"""H.264 at 29.97 fps (how most real egocentric video arrives), encoded with the libx264 of ``imageio-ffmpeg``.

OpenCV's wheel cannot encode H.264, so the frames are piped into the ffmpeg binary that ``imageio-ffmpeg`` ships
(a test dependency; nothing is downloaded). The project's sampled decoding must read exactly what a sequential
OpenCV decode reads, and the key frames must be the independent implementation's.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from reference_impl import decode_all, reference_keyframes

from embodied_r.config import KeyframesConfig
from embodied_r.keyframes import extract_keyframes, iter_frames, probe_video, sample_indices, sample_step
from embodied_r.keyframes.synthetic import pan, render_frame
from embodied_r.keyframes.video import DENSE_DECODE_PER_SAMPLE, decode_plan

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
SIZE = (320, 240)


@pytest.fixture(scope="module")
def h264_video(tmp_path_factory: pytest.TempPathFactory, texture: np.ndarray) -> Path:
    path = tmp_path_factory.mktemp("h264") / "pan_ntsc_h264.mp4"
    motion = pan(2.5, cx=300, cy=800, angle_per_frame=0.2)
    argv = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{SIZE[0]}x{SIZE[1]}", "-r", "30000/1001", "-i", "-",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-crf", "18", str(path),
    ]  # fmt: skip
    frames = b"".join(render_frame(texture, motion(i), SIZE).tobytes() for i in range(400))
    subprocess.run(argv, input=frames, check=True, timeout=120)
    return path


def test_h264_probe_and_sampling(h264_video):
    info = probe_video(h264_video)
    assert info.frames == 400 and info.fps == pytest.approx(30000 / 1001)
    assert sample_step(info.fps, 1.0, "round") == 30


def test_h264_sampled_decoding_equals_sequential_decoding(h264_video):
    every, _ = decode_all(h264_video)
    wanted = [0, 29, 30, 31, 210, 399]
    got = list(iter_frames(h264_video, wanted, chunk=4))
    assert [i for i, _ in got] == wanted
    for i, frame in got:  # B-frames and seeking: the frame at index i is the i-th frame, not a neighbour
        assert np.abs(frame.astype(int) - every[i].astype(int)).mean() < 1.0, i


def test_h264_key_frames_match_the_independent_implementation(h264_video):
    result = extract_keyframes(h264_video, KeyframesConfig())
    assert result.indices == reference_keyframes(h264_video)
    assert 4 <= len(result.indices) <= 32 and result.indices[-1] == 399


def test_h264_long_gop_gets_two_decoder_threads_and_the_same_frames_bitwise(h264_video):
    """x264's default GOP (250) forces decoding nearly every frame: ``auto`` adds a decoder thread (where the
    process may use two CPUs), and frame-threaded H.264 decoding is bit-exact, so the samples are identical."""
    info = probe_video(h264_video)
    indices = sample_indices(info.frames, info.fps, 1.0)
    plan = decode_plan(h264_video, indices, "auto")
    assert plan.frames_per_sample > DENSE_DECODE_PER_SAMPLE and plan.gop > 100
    assert plan.threads == min(2, len(os.sched_getaffinity(0)))
    old = list(iter_frames(h264_video, indices, chunk=4, num_threads=1))
    new = list(iter_frames(h264_video, indices, chunk=4, num_threads="auto"))
    assert [i for i, _ in new] == [i for i, _ in old] == indices
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(old, new, strict=True))


def test_h264_key_frames_are_the_same_with_one_thread_and_auto(h264_video):
    one = extract_keyframes(h264_video, KeyframesConfig(decode_threads=1))
    auto = extract_keyframes(h264_video, KeyframesConfig(decode_threads="auto"))
    assert auto.indices == one.indices and auto.sample_overlaps == one.sample_overlaps
    assert all(np.array_equal(a, b) for a, b in zip(one.frames, auto.frames, strict=True))
