"""Artifacts are byte-deterministic; the batch helper survives bad videos and resumes."""

from __future__ import annotations

import json
import shutil

import pytest

from embodied_r.config import KeyframesConfig
from embodied_r.keyframes import extract_keyframes, extract_many, params_hash, write_keyframe_artifacts

CFG = KeyframesConfig()


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_artifacts_are_byte_identical_across_runs(videos, tmp_path):
    first = write_keyframe_artifacts(extract_keyframes(videos["rotate"], CFG), None, tmp_path / "a")
    second = write_keyframe_artifacts(extract_keyframes(videos["rotate"], CFG), None, tmp_path / "b")
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a == b
    assert set(a) == {*first["files"], "manifest.json", "contact_sheet.png"}
    assert first["count"] == second["count"] == len(first["files"])


def test_manifest_content(videos, tmp_path):
    result = extract_keyframes(videos["slow_pan"], CFG)
    write_keyframe_artifacts(result, None, tmp_path)
    text = (tmp_path / "manifest.json").read_text()
    manifest = json.loads(text)
    assert text == json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    assert str(tmp_path) not in text and str(videos["slow_pan"].parent) not in text
    assert manifest["video"] == "slow_pan.mp4"
    assert manifest["params"] == CFG.model_dump(mode="json")
    assert manifest["params_hash"] == params_hash(CFG)
    assert [k["index"] for k in manifest["keyframes"]] == result.indices
    assert manifest["keyframes"][0]["file"] == "frame_000_000000.jpg"
    assert all(k["reason"] for k in manifest["keyframes"])
    assert "decode_seconds" not in text


def test_stale_frames_are_removed(videos, tmp_path):
    write_keyframe_artifacts(extract_keyframes(videos["fast_pan"], CFG), None, tmp_path)
    write_keyframe_artifacts(extract_keyframes(videos["static"], CFG), None, tmp_path)
    assert len(list(tmp_path.glob("frame_*.jpg"))) == CFG.min_frames


def test_frame_count_mismatch_is_an_error(videos, tmp_path):
    result = extract_keyframes(videos["static"], CFG)
    with pytest.raises(ValueError, match="4 key frames"):
        write_keyframe_artifacts(result, result.frames[:2], tmp_path)


def test_extract_many_goes_past_a_bad_video_and_resumes(videos, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"garbage" * 50)
    batch = {
        "a_static": videos["static"],
        "b_bad": bad,
        "c_missing": tmp_path / "missing.mp4",
        "d_pan": videos["fast_pan"],
    }
    out = tmp_path / "out"
    results, failures = extract_many(batch, CFG, out, progress=False)
    assert sorted(results) == ["a_static", "d_pan"]
    assert [f["video_id"] for f in failures] == ["b_bad", "c_missing"]
    assert all("VideoError" in f["error"] and str(batch[f["video_id"]]) in f["error"] for f in failures)
    assert not results["a_static"]["skipped"] and results["a_static"]["count"] == 4
    before = _tree(out)

    again, failures_again = extract_many(batch, CFG, out, progress=False)
    assert again["a_static"]["skipped"] and again["d_pan"]["skipped"]
    assert again["d_pan"]["count"] == results["d_pan"]["count"]
    assert len(failures_again) == 2
    assert _tree(out) == before

    # other params -> recomputed; an incomplete directory -> recomputed
    changed, _ = extract_many(batch, KeyframesConfig(max_frames=5), out, progress=False)
    assert not changed["d_pan"]["skipped"]
    shutil.rmtree(out / "a_static")
    (out / "a_static").mkdir()
    redo, _ = extract_many({"a_static": videos["static"]}, KeyframesConfig(max_frames=5), out, progress=False)
    assert not redo["a_static"]["skipped"]


def test_failures_carry_their_reason_and_are_recorded_for_downstream(videos, tmp_path, texture):
    from embodied_r.keyframes import read_failures, write_failure
    from embodied_r.keyframes.synthetic import static, write_video

    short = write_video(tmp_path / "short.mp4", static(), frames=15, fps=30.0, texture=texture)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"garbage" * 50)
    batch = {"ok": videos["static"], "short": short, "bad": bad}
    results, failures = extract_many(batch, CFG, tmp_path / "out", progress=False)
    assert sorted(results) == ["ok"]
    assert {f["video_id"]: f["reason"] for f in failures} == {"bad": "unreadable_video", "short": "too_short"}
    for failure in failures:
        write_failure(tmp_path / "out", failure["video_id"], failure)
    recorded = read_failures(tmp_path / "out")
    assert recorded["short"]["reason"] == "too_short" and "Drop it from the dataset" in recorded["short"]["error"]
    write_failure(tmp_path / "out", "short", None)
    assert sorted(read_failures(tmp_path / "out")) == ["bad"]
