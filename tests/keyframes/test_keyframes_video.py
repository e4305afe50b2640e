"""Probing, sampling and decoding; every unusable video raises VideoError naming the file."""

from __future__ import annotations

import math

import cv2
import decord
import numpy as np
import pytest
from reference_impl import decode_all

from embodied_r.config import KeyframesConfig
from embodied_r.keyframes import VideoError, iter_frames, probe_video, sample_indices, sample_step
from embodied_r.keyframes.synthetic import static, write_video
from embodied_r.keyframes.video import DENSE_DECODE_PER_SAMPLE, decode_plan, frames_decoded_per_sample


def test_probe_reads_container_facts(videos):
    info = probe_video(videos["static"])
    assert (info.frames, info.fps, info.width, info.height) == (300, 30.0, 320, 240)
    assert info.duration == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("fps", "rounding", "step"),
    [(30.0, "round", 30), (29.97, "round", 30), (29.97, "floor", 29), (25.0, "round", 25), (0.5, "round", 1)],
)
def test_sample_step(fps, rounding, step):
    assert sample_step(fps, 1.0, rounding) == step


def test_sample_indices_keep_last_and_step():
    assert sample_indices(95, 30.0, 1.0) == [0, 30, 60, 90, 94]
    assert sample_indices(91, 30.0, 1.0) == [0, 30, 60, 90]
    assert sample_indices(10, 30.0, 10.0) == [0, 3, 6, 9]  # 3 fps sampling -> step 3
    assert sample_indices(5, 2.0, 5.0) == [0, 1, 2, 3, 4]  # step never below 1


def test_decoded_frames_equal_sequential_decoding(videos):
    every, _ = decode_all(videos["rotate"])
    wanted = [0, 7, 30, 31, 200, 449]
    got = list(iter_frames(videos["rotate"], wanted, chunk=4))
    assert [i for i, _ in got] == wanted
    assert all(np.array_equal(frame, every[i]) for i, frame in got)


def test_frames_decoded_per_sample_follows_seeks_and_straight_runs():
    assert frames_decoded_per_sample([0, 12, 24, 36], [0, 30]) == 4.0  # 0; seek to 24, decode 24..30
    assert frames_decoded_per_sample([0, 12, 24, 36], [0, 5, 30]) == 13 / 3  # 0..5 straight on; seek to 24
    assert frames_decoded_per_sample([0], [0, 30, 60]) == 61 / 3  # one GOP: every frame up to the last sample


def test_short_gop_mp4v_keeps_one_decoder_thread(videos):
    """OpenCV's mp4v has an I-frame every 12 frames: a 1 fps sample costs a few decoded frames, so ``auto``
    stays at one thread; an explicit number is taken as is."""
    path = videos["rotate"]
    indices = sample_indices(450, 30.0, 1.0)
    plan = decode_plan(path, indices, "auto")
    assert plan.gop == pytest.approx(12, abs=0.5) and plan.frames_per_sample < DENSE_DECODE_PER_SAMPLE
    assert plan.threads == 1
    assert decode_plan(path, indices, 3).threads == 3


@pytest.mark.parametrize("value", ["many", -1, 1.5])
def test_decode_threads_is_a_count_or_auto(value):
    assert KeyframesConfig(decode_threads="auto").decode_threads == "auto"
    with pytest.raises(ValueError, match="decode_threads"):
        KeyframesConfig(decode_threads=value)


def _assert_names(exc: pytest.ExceptionInfo, path) -> None:
    assert str(path) in str(exc.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.mp4"
    with pytest.raises(VideoError, match="no such file") as exc:
        probe_video(path)
    _assert_names(exc, path)


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 100, bytes(range(256)) * 40])
def test_corrupt_bytes(tmp_path, content):
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoError, match="re-encode") as exc:
        probe_video(path)
    _assert_names(exc, path)


def test_truncated_file(tmp_path, videos):
    path = tmp_path / "truncated.mp4"
    path.write_bytes(videos["static"].read_bytes()[:5000])  # mp4v writes the index (moov) at the end
    with pytest.raises(VideoError) as exc:
        probe_video(path)
    _assert_names(exc, path)


def test_no_video_stream(tmp_path):
    path = tmp_path / "empty.mp4"
    cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 48)).release()
    with pytest.raises(VideoError) as exc:
        probe_video(path)
    _assert_names(exc, path)


def test_shorter_than_one_second(tmp_path, texture):
    path = write_video(tmp_path / "short.mp4", static(), frames=20, fps=30.0, texture=texture)
    with pytest.raises(VideoError, match="shorter than one second") as exc:
        probe_video(path)
    _assert_names(exc, path)


class _FakeReader:
    def __init__(self, frames: int, fps: float):
        self._frames, self._fps = frames, fps

    def __len__(self):
        return self._frames

    def get_avg_fps(self):
        return self._fps

    def __getitem__(self, i):
        return np.zeros((48, 64, 3), np.uint8)


@pytest.mark.parametrize(
    ("frames", "fps", "message"),
    [(0, 30.0, "no frames"), (100, 0.0, "fps=0.0"), (100, math.nan, "fps=nan"), (100, -5.0, "fps=-5.0")],
)
def test_bad_container_metadata(tmp_path, monkeypatch, frames, fps, message):
    path = tmp_path / "weird.mp4"
    path.write_bytes(b"x")
    monkeypatch.setattr(decord, "VideoReader", lambda *a, **k: _FakeReader(frames, fps))
    with pytest.raises(VideoError, match=message) as exc:
        probe_video(path)
    _assert_names(exc, path)
    assert isinstance(exc.value, ValueError)


# --------------------------------------------------------------------------- the rule ingest shares


@pytest.mark.parametrize(("frames", "samples"), [(15, 2), (60, 3)])
def test_too_few_samples_for_min_frames_is_refused_as_too_short(tmp_path, texture, frames, samples):
    """0.5 s (under a second) and 2 s (3 samples at 1 fps) at 30 fps: fewer samples than min_frames=4."""
    from embodied_r.config import KeyframesConfig
    from embodied_r.keyframes import extract_keyframes, keyframe_refusal

    path = write_video(tmp_path / f"clip{frames}.mp4", static(), frames=frames, fps=30.0, texture=texture)
    with pytest.raises(VideoError) as exc:
        extract_keyframes(path, KeyframesConfig())
    assert exc.value.reason == "too_short"
    _assert_names(exc, path)
    refusal = keyframe_refusal(path, KeyframesConfig())
    assert refusal is not None and refusal.reason == "too_short" and str(refusal) == str(exc.value)
    if frames == 60:
        assert f"{samples} samples" in str(exc.value) and "keyframes.min_frames=4" in str(exc.value)
        # with a lower minimum the same clip is usable, by both the extractor and the ingest rule
        assert keyframe_refusal(path, KeyframesConfig(min_frames=3)) is None
        assert len(extract_keyframes(path, KeyframesConfig(min_frames=3)).indices) == 3


def test_keyframe_refusal_reasons_and_one_probe_per_file(tmp_path, videos, monkeypatch):
    from embodied_r.config import KeyframesConfig
    from embodied_r.keyframes import keyframe_refusal, video

    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video at all" * 100)
    calls = []
    real = video.probe_video
    monkeypatch.setattr(video, "probe_video", lambda path: calls.append(path) or real(path))
    monkeypatch.setattr(video, "_PROBE_CACHE", {})
    cfg = KeyframesConfig()
    assert keyframe_refusal(videos["static"], cfg) is None
    assert keyframe_refusal(corrupt, cfg).reason == "unreadable_video"
    assert keyframe_refusal(tmp_path / "missing.mp4", cfg).reason == "missing_video"
    for _ in range(3):  # another config re-applies the sampling rule, not the probe
        assert keyframe_refusal(videos["static"], KeyframesConfig(min_frames=20)).reason == "too_short"
        assert keyframe_refusal(corrupt, cfg).reason == "unreadable_video"
    assert len(calls) == 2, "each file is probed once"
    corrupt.write_bytes(videos["static"].read_bytes())  # a replaced file is probed again
    assert keyframe_refusal(corrupt, cfg) is None and len(calls) == 3
