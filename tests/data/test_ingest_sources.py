"""Several benchmarks in one ``raw_videos`` (the paper's UrbanVideo-Bench + VSI-Bench): ids, split, results.

Real files throughout: tiny mp4 videos, an UrbanVideo-Bench ``MCQ.parquet`` and a VSI-Bench parquet built the way
``test_adapters.py`` builds them, ingested by :func:`embodied_r.data.ingest.ingest` and scored by the evaluation
metrics.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from embodied_r.config import parse_params
from embodied_r.data.ingest import ingest
from embodied_r.data.records import read_records
from embodied_r.data.split import split_scenes
from embodied_r.evaluation.metrics import aggregate, score_sample
from embodied_r.training.rows import TrainingRow
from tests.data.test_adapters import urban_row, vsi_row, write_parquet

URBAN = ["landmark_position", "counterfactual", "progress_evaluation", "action_generation"]
VSI = ["object_rel_direction", "object_rel_distance", "route_planning", "obj_appearance_order"]
VLM = {"backend": "openai", "model": "Qwen/Qwen2.5-VL-72B-Instruct"}


def write_video(path: Path) -> Path:
    """A real mp4 of 25 frames at 5 fps: 5 s, enough 1-fps samples for the key-frame minimum (ingest probes it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5, (32, 32))
    for i in range(25):
        writer.write(np.full((32, 32, 3), 10 * i, dtype=np.uint8))
    writer.release()
    return path


@pytest.fixture()
def benchmarks(tmp_path: Path) -> dict[str, dict[str, str]]:
    """An UrbanVideo-Bench of 6 flights and a VSI-Bench of 4 scans, 2 questions each, one bad record in each.

    Both number their questions from 1, as the real files do, and the UrbanVideo flight ``scannet__scene0001_00``
    has the id VSI-Bench gives its scan ``scannet/scene0001_00``: without a prefix both ids would collide.
    """
    urban_dir, vsi_dir = tmp_path / "urban" / "videos", tmp_path / "vsi"
    flights = ["scannet__scene0001_00", *(f"flight{i}" for i in range(1, 6))]
    urban_rows = []
    for i, flight in enumerate(flights):
        write_video(urban_dir / f"{flight}.mp4")
        urban_rows += [
            urban_row(2 * i + 1, flight),
            urban_row(2 * i + 2, flight, "A", question_category="Counterfactual"),
        ]
    urban_rows.append(urban_row(99, "no_such_flight.mp4"))
    scans = [f"scene000{i}_00" for i in range(1, 5)]
    vsi_rows = []
    for i, scan in enumerate(scans):
        write_video(vsi_dir / "scannet" / f"{scan}.mp4")
        vsi_rows += [vsi_row(2 * i + 1, scan), vsi_row(2 * i + 2, scan, "route_planning", ground_truth="A")]
    vsi_rows.append(vsi_row(99, "scene_missing"))
    return {
        "urbanvideo": {"kind": "urbanvideo", "videos_dir": str(urban_dir),
                       "annotations": str(write_parquet(tmp_path / "urban" / "MCQ.parquet", urban_rows))},
        "vsibench": {"kind": "vsibench", "videos_dir": str(vsi_dir),
                     "annotations": str(write_parquet(tmp_path / "vsi" / "test.parquet", vsi_rows))},
    }  # fmt: skip


def _params(data: dict, **sections: dict):
    return parse_params({"data": data, "perception": VLM, "split": {"ratios": [0.5, 0.25, 0.25], "seed": 3},
                         "training_set": {"categories": [*URBAN, *VSI]}, **sections})  # fmt: skip


def test_two_sources_ingest_into_one_dataset_split_by_scene_within_each(tmp_path, benchmarks):
    params = _params({"source": None, "sources": list(benchmarks.values()), "categories": [*URBAN, *VSI]})
    out = tmp_path / "data" / "raw"
    summary = ingest(params, out, progress=False)

    records = read_records(out / "records.jsonl")
    assert Counter(r.data_source for r in records) == {"urbanvideo": 12, "vsibench": 8}
    assert summary.source == "urbanvideo+vsibench" and summary.per_source == {"urbanvideo": 12, "vsibench": 8}
    # ids carry their source: both files number questions from 1, and one video id appears in both
    assert len({r.question_id for r in records}) == 20
    assert {"urbanvideo__1", "vsibench__1"} <= {r.question_id for r in records}
    videos = json.loads((out / "videos.json").read_text())
    assert {"urbanvideo__scannet__scene0001_00", "vsibench__scannet__scene0001_00"} <= set(videos)
    assert len(videos) == 10 and all(r.video_id in videos for r in records)
    assert videos["urbanvideo__scannet__scene0001_00"]["path"] != videos["vsibench__scannet__scene0001_00"]["path"]

    # each benchmark is split on its own: its scenes in the shares of split.ratios, every split present
    for source in ("urbanvideo", "vsibench"):
        mine = [r for r in records if r.data_source == source]
        scenes = {r.scene_name: r.split for r in mine}
        assert all(scenes[r.scene_name] == r.split for r in mine), "no scene in two splits"
        assert scenes == split_scenes(sorted(scenes), params.split.ratios, params.split.seed)
        assert set(scenes.values()) == {"train", "val", "test"}, source

    # the bad record of each file is reported under its source, and stops nothing
    exclusions = [json.loads(line) for line in (out / "exclusions.jsonl").read_text().splitlines()]
    assert {(e["source"], e["item"], e["reason"]) for e in exclusions} == {
        ("urbanvideo", "99", "missing_video"), ("vsibench", "99", "missing_video"),
    }  # fmt: skip


def test_one_source_keeps_its_ids(tmp_path, benchmarks):
    urban = benchmarks["urbanvideo"]
    params = _params({"source": "urbanvideo", "annotations": urban["annotations"], "videos_dir": urban["videos_dir"],
                      "categories": URBAN}, training_set={"categories": URBAN})  # fmt: skip
    summary = ingest(params, tmp_path / "raw", progress=False)
    records = read_records(tmp_path / "raw" / "records.jsonl")
    assert summary.source == "urbanvideo" and summary.per_source == {"urbanvideo": 12}
    assert {r.question_id for r in records} == {str(i) for i in range(1, 13)}, "no prefix with one source"
    assert "scannet__scene0001_00" in {r.video_id for r in records}


def test_results_of_a_two_source_run_are_per_source_and_pooled(tmp_path, benchmarks):
    params = _params({"source": None, "sources": list(benchmarks.values()), "categories": [*URBAN, *VSI]})
    ingest(params, tmp_path / "raw", progress=False)
    records = read_records(tmp_path / "raw" / "records.jsonl")
    samples = []
    for r in records:  # a model right on every UrbanVideo question, wrong on every VSI-Bench one
        row = TrainingRow(
            **r.model_dump(include={"question_id", "question", "category", "data_source", "scene_name", "split"}),
            prompt=[{"role": "user", "content": r.question}], solution=r.answer, choices=sorted(r.choices),
            prompt_tokens=1,
        )  # fmt: skip
        letter = r.answer if r.data_source == "urbanvideo" else next(c for c in sorted(r.choices) if c != r.answer)
        samples.append(score_sample(f"<think>t</think><answer>{letter}</answer>", row))
    agg = aggregate(samples, bootstrap_samples=200)
    assert agg["pooled_accuracy"] == pytest.approx(12 / 20)
    assert agg["per_source"] == {
        "urbanvideo": {"n": 12, "accuracy": 1.0, "ci95": [1.0, 1.0]},
        "vsibench": {"n": 8, "accuracy": 0.0, "ci95": [0.0, 0.0]},
    }
