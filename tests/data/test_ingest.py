"""Ingest of real benchmark files: videos key frames would refuse are excluded with a reason, zips are extracted
outside the dataset folder, and a read-only dataset folder ingests without a write."""

from __future__ import annotations

import json
import logging
import os
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from embodied_r.config import parse_params
from embodied_r.data.adapters import ExtractionError
from embodied_r.data.ingest import ingest, read_videos
from embodied_r.keyframes import extract_many
from embodied_r.layout import Layout

MC_QUESTION = "Question: Where is the tower relative to you?\nA. left\nB. right\nC. behind"


def write_clip(path: Path, seconds: float, fps: float = 30.0) -> Path:
    """A real mp4 of ``seconds`` at ``fps`` (128x96: decord reads mp4v at this size), textured so it decodes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (128, 96))
    assert writer.isOpened()
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (96, 400, 3), dtype=np.uint8)
    for i in range(round(seconds * fps)):
        writer.write(np.ascontiguousarray(texture[:, i % 272 : i % 272 + 128]))
    writer.release()
    return path


def real_params(root: Path, **data: object) -> object:
    """Params for a real source (a VLM backend: the oracle only describes the embedded world)."""
    categories = data.pop("categories")
    return parse_params(
        {
            "data": {**data, "categories": categories},
            "training_set": {"categories": categories},
            "perception": {"backend": "openai", "model": "some/vlm"},
        }
    )


def urban_row(qid: int, video_id: str) -> dict:
    return {
        "Question_id": qid,
        "video_id": video_id,
        "question_category": "Landmark Position",
        "question": MC_QUESTION,
        "answer": "B",
    }


def test_a_clip_too_short_for_key_frames_is_excluded_at_ingest_and_the_rest_ingest(tmp_path, caplog):
    """At the default key-frame settings (1 fps, min_frames 4): 0.5 s and 2 s clips give 2 and 3 samples."""
    videos = tmp_path / "videos"
    write_clip(videos / "long.mp4", 5.0)
    write_clip(videos / "half_second.mp4", 0.5)
    write_clip(videos / "two_seconds.mp4", 2.0)
    rows = [urban_row(1, "long.mp4"), urban_row(2, "half_second.mp4"), urban_row(3, "long.mp4")]
    rows += [urban_row(4, "two_seconds.mp4"), urban_row(5, "missing.mp4")]
    annotations = tmp_path / "MCQ.parquet"
    pd.DataFrame(rows).to_parquet(annotations)
    params = real_params(
        tmp_path, source="urbanvideo", annotations=str(annotations), videos_dir=str(videos),
        categories=["landmark_position"],
    )  # fmt: skip
    out = Layout(tmp_path).raw

    with caplog.at_level(logging.INFO, logger="embodied_r.data.ingest"):
        summary = ingest(params, out, progress=False)

    assert summary.questions == 2 and summary.videos == 1
    assert summary.exclusions == {"missing_video": 1, "too_short": 2}
    exclusions = {e["item"]: e for e in map(json.loads, (out / "exclusions.jsonl").read_text().splitlines())}
    assert {k: e["reason"] for k, e in exclusions.items()} == {"2": "too_short", "4": "too_short", "5": "missing_video"}
    assert "half_second.mp4" in exclusions["2"]["detail"] and "Drop it from the dataset" in exclusions["2"]["detail"]
    assert "keyframes.min_frames=4" in exclusions["4"]["detail"]
    assert json.loads((out / "summary.json").read_text())["exclusions"] == summary.exclusions
    # the log says it by reason, with an example
    by_reason = [r.getMessage() for r in caplog.records if r.getMessage().startswith("excluded ")]
    assert any("2 questions: too_short" in m and "half_second.mp4" in m for m in by_reason)
    assert any("1 questions: missing_video" in m for m in by_reason)

    # what ingest keeps, key frames can process (same settings)
    paths = {vid: Path(v["path"]) for vid, v in read_videos(out).items()}
    results, failures = extract_many(paths, params.keyframes, tmp_path / "keyframes", progress=False)
    assert failures == [] and sorted(results) == ["long.mp4"]


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def vsi_row(qid: int, scene: str) -> dict:
    return {
        "id": qid,
        "dataset": "scannet",
        "scene_name": scene,
        "question_type": "object_rel_distance",
        "question": "Which object is closest to the bed?",
        "options": ["A. lamp", "B. chair", "C. table"],
        "ground_truth": "B",
    }


@pytest.fixture()
def read_only_vsibench(tmp_path: Path):
    """A VSI-Bench parquet and a read-only videos folder holding ``scannet.zip``; restored to writable after."""
    dataset = tmp_path / "dataset"
    clip = write_clip(tmp_path / "clip.mp4", 5.0).read_bytes()
    _zip(dataset / "videos" / "scannet.zip", {"scannet/scene0001_00.mp4": clip, "scene0002_00.mp4": clip})
    rows = [vsi_row(1, "scene0001_00"), vsi_row(2, "scene0002_00"), vsi_row(3, "scene0003_00")]
    annotations = dataset / "test.parquet"
    pd.DataFrame(rows).to_parquet(annotations)
    (dataset / "videos" / "scannet.zip").chmod(0o444)
    for folder in (dataset / "videos", dataset):
        folder.chmod(0o555)
    yield dataset
    for folder in (dataset, dataset / "videos"):
        folder.chmod(0o755)


def test_a_read_only_dataset_folder_with_a_vsibench_zip_ingests_and_is_never_written(tmp_path, read_only_vsibench):
    dataset = read_only_vsibench
    before = _snapshot(dataset)
    root = tmp_path / "project"
    params = real_params(
        root, source="vsibench", annotations=str(dataset / "test.parquet"), videos_dir=str(dataset / "videos"),
        categories=["object_rel_distance"],
    )  # fmt: skip
    out = Layout(root).raw

    summary = ingest(params, out, progress=False)

    assert summary.questions == 2 and summary.exclusions == {"missing_video": 1}
    assert _snapshot(dataset) == before, "nothing is written inside the dataset folder"
    extracted = root / ".cache" / "extracted" / "scannet"
    assert sorted(p.name for p in extracted.iterdir()) == ["scene0001_00.mp4", "scene0002_00.mp4"]
    videos = read_videos(out)
    assert Path(videos["scannet__scene0001_00"]["path"]) == (extracted / "scene0001_00.mp4").resolve()
    # the cache is inside the project: videos.json names it relative to the dataset, not by a machine path
    stored = json.loads((out / "videos.json").read_text())["scannet__scene0001_00"]["path"]
    assert not os.path.isabs(stored)

    # A rerun reuses the extracted files.
    mtime = (extracted / "scene0001_00.mp4").stat().st_mtime_ns
    ingest(params, out, progress=False)
    assert (extracted / "scene0001_00.mp4").stat().st_mtime_ns == mtime


def test_an_unwritable_extraction_folder_is_one_clear_error(tmp_path, read_only_vsibench):
    dataset = read_only_vsibench
    root = tmp_path / "project"
    root.mkdir()
    (root / "blocked").write_text("a file where the extraction folder should be")
    params = real_params(
        root, source="vsibench", annotations=str(dataset / "test.parquet"), videos_dir=str(dataset / "videos"),
        categories=["object_rel_distance"], extract_dir="blocked/extracted",
    )  # fmt: skip
    with pytest.raises(ExtractionError) as exc:
        ingest(params, Layout(root).raw, progress=False)
    message = str(exc.value)
    assert str(root / "blocked" / "extracted") in message and "data.extract_dir" in message

    inside = real_params(
        root, source="vsibench", annotations=str(dataset / "test.parquet"), videos_dir=str(dataset / "videos"),
        categories=["object_rel_distance"], extract_dir=str(dataset / "videos" / "extracted"),
    )  # fmt: skip
    with pytest.raises(ExtractionError, match="inside the dataset folder"):
        ingest(inside, Layout(root).raw, progress=False)
