"""Key-frame selection against an independent implementation of reference §1, and its edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from reference_impl import overlap_or_none, reference_keyframes

from embodied_r.config import KeyframesConfig
from embodied_r.keyframes import clamp_positions, extract_keyframes, warped_overlap
from embodied_r.keyframes.synthetic import pan, write_video

CFG = KeyframesConfig()


@pytest.mark.parametrize("name", ["static", "slow_pan", "fast_pan", "rotate", "ntsc"])
def test_indices_match_independent_implementation(videos, name):
    result = extract_keyframes(videos[name], CFG)
    assert result.indices == reference_keyframes(videos[name])
    assert result.indices == sorted(set(result.indices))
    assert len(result.frames) == len(result.indices)
    assert all(f.shape == (240, 320, 3) and f.dtype == np.uint8 for f in result.frames)


def test_static_video_gives_min_frames_uniformly(videos):
    result = extract_keyframes(videos["static"], CFG)
    # 300 frames at 30 fps: samples 0, 30, ..., 270, 299 (11); 4 of them at positions 0, 3, 7, 10
    assert result.sample_indices == [*range(0, 300, 30), 299]
    assert result.walk_indices == [0, 299]
    assert result.clamped == "min"
    assert result.indices == [0, 90, 210, 299]
    assert [k.reason for k in result.keyframes] == ["first", "clamp_min", "clamp_min", "last"]
    assert all(o == pytest.approx(1.0, abs=0.01) for o in result.sample_overlaps[1:])


def test_fast_pan_keeps_more_than_static(videos):
    fast = extract_keyframes(videos["fast_pan"], CFG)
    slow = extract_keyframes(videos["slow_pan"], CFG)
    assert len(fast.indices) > CFG.min_frames
    assert fast.clamped is None
    assert len(fast.indices) / fast.info.duration > len(slow.walk_indices) / slow.info.duration
    assert {k.reason for k in fast.keyframes} <= {"first", "low_overlap", "match_failed", "last"}


def test_slow_pan_overlap_follows_camera(videos):
    # 1.5 px/frame on a 320 px frame: 45 px per second -> overlap 1 - 45 k / 320 with the key frame k s back
    result = extract_keyframes(videos["slow_pan"], CFG)
    assert result.sample_overlaps[1] == pytest.approx(1 - 45 / 320, abs=0.02)
    kept = [k for k in result.keyframes if k.reason == "low_overlap"]
    assert kept and all(k.overlap < CFG.overlap_threshold for k in kept)


def test_clamp_to_max_keeps_first_and_last(videos):
    cfg = KeyframesConfig(max_frames=3, min_frames=2)
    result = extract_keyframes(videos["fast_pan"], cfg)
    walk = result.walk_indices
    assert len(walk) > 3 and result.clamped == "max"
    assert result.indices == [walk[p] for p in clamp_positions(len(walk), 3)]
    assert result.indices[0] == 0 and result.indices[-1] == 299
    assert result.indices == reference_keyframes(videos["fast_pan"], lo=2, hi=3)


def test_ntsc_fps_rounds_to_30(videos):
    result = extract_keyframes(videos["ntsc"], CFG)
    assert result.info.fps == pytest.approx(29.97, abs=1e-3)
    assert result.sample_indices == [*range(0, 330, 30), 329]
    assert result.keyframes[1].timestamp == pytest.approx(result.indices[1] / result.info.fps)
    floor = extract_keyframes(videos["ntsc"], KeyframesConfig(sample_rounding="floor"))
    assert floor.sample_indices == [*range(0, 330, 29), 329]


def test_last_frame_is_a_sample_and_a_key_frame(tmp_path, texture):
    path = write_video(tmp_path / "odd.mp4", pan(0.2), frames=95, texture=texture)
    result = extract_keyframes(path, CFG)
    assert result.sample_indices == [0, 30, 60, 90, 94]
    assert result.indices[-1] == 94
    no_last = extract_keyframes(path, KeyframesConfig(keep_last=False, min_frames=1))
    assert no_last.indices == [0]


def test_max_side_shrinks_frames(videos):
    result = extract_keyframes(videos["slow_pan"], KeyframesConfig(max_side=160))
    assert result.frames[0].shape == (120, 160, 3)


def test_holding_fewer_frames_decodes_again(videos, monkeypatch):
    import embodied_r.keyframes.extract as ex

    full = extract_keyframes(videos["fast_pan"], CFG)
    monkeypatch.setattr(ex, "MAX_HELD_FACTOR", 0)
    again = extract_keyframes(videos["fast_pan"], CFG)
    assert again.indices == full.indices
    assert all(np.array_equal(a, b) for a, b in zip(again.frames, full.frames, strict=True))


@pytest.mark.parametrize(
    ("n", "m", "expected"),
    [(10, 4, [0, 3, 6, 9]), (11, 4, [0, 3, 7, 10]), (4, 4, [0, 1, 2, 3]), (3, 4, [0, 1, 2]), (5, 2, [0, 4])],
)
def test_clamp_positions_uniform(n, m, expected):
    assert clamp_positions(n, m) == expected


def test_clamp_positions_official():
    assert clamp_positions(10, 4, "official") == [0, 1, 5, 9]
    assert clamp_positions(40, 32, "official")[:3] == [0, 1, 2]
    assert clamp_positions(5, 2, "official") == [0, 4]


def test_overlap_agrees_with_polygon_clipping():
    rng = np.random.default_rng(0)
    w, h = 320, 240
    checked = 0
    for _ in range(300):
        hom = np.eye(3) + rng.normal(0, [[0.2, 0.2, 80], [0.2, 0.2, 80], [3e-4, 3e-4, 0]])
        ours, theirs = warped_overlap(hom, w, h), overlap_or_none(hom, w, h)
        assert (ours is None) == (theirs is None)
        if ours is not None:
            assert ours == pytest.approx(theirs, abs=1e-4)
            checked += 1
    assert checked > 100


def test_overlap_simple_cases():
    assert warped_overlap(np.eye(3), 640, 480) == pytest.approx(1.0)
    # shared edges (a static camera): cv2.intersectConvexConvex gets these wrong
    rng = np.random.default_rng(1)
    for _ in range(50):
        near = np.eye(3) + rng.normal(0, 1e-15, (3, 3))
        assert warped_overlap(near, 320, 240) == pytest.approx(1.0)
    half = np.array([[1, 0, 0], [0, 1, 120], [0, 0, 1.0]])
    assert warped_overlap(half, 320, 240) == pytest.approx(0.5)
    shift = np.array([[1, 0, 320], [0, 1, 0], [0, 0, 1.0]])
    assert warped_overlap(shift, 640, 480) == pytest.approx(0.5)
    mirror = np.array([[-1, 0, 960], [0, 1, 0], [0, 0, 1.0]])  # reversed orientation
    assert warped_overlap(mirror, 640, 480) == pytest.approx(0.5)
    away = np.array([[1, 0, 2000], [0, 1, 0], [0, 0, 1.0]])
    assert warped_overlap(away, 640, 480) == 0.0
    horizon = np.array([[1, 0, 0], [0, 1, 0], [-0.002, 0, 1.0]])  # x = 500 maps to infinity
    assert warped_overlap(horizon, 640, 480) is None
    flat = np.array([[1, 0, 0], [0, 0, 0], [0, 0, 1.0]])
    assert warped_overlap(flat, 640, 480) is None
