"""Adapters for real datasets: happy paths, every bad-input case, malformed files, zips."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from embodied_r.data import adapters
from embodied_r.data.adapters import (
    DatasetFormatError,
    check_video,
    load_official_json,
    load_urbanvideo,
    load_vsibench,
    normalize_answer_letter,
    vsibench_video_id,
)
from embodied_r.data.records import QuestionRecord

# --------------------------------------------------------------------------- fixtures


def write_video(path: Path, frames: int = 3) -> Path:
    """A tiny real mp4 (mp4v) of a few frames."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5, (32, 32))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((32, 32, 3), 40 * i, dtype=np.uint8))
    writer.release()
    return path


def write_corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    return path


def write_empty(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


MC_QUESTION = "Question: Where is the tower relative to you?\nA. left\nB. right\nC. behind"


def urban_row(qid: object, video_id: str, answer: str = "B", **over: object) -> dict:
    row = {
        "Question_id": qid,
        "video_id": video_id,
        "question_category": "Landmark Position",
        "question": MC_QUESTION,
        "answer": answer,
    }
    row.update(over)
    return row


def reasons(build) -> dict[str, str]:
    """item → reason."""
    return {e.item: e.reason for e in build.exclusions}


@pytest.fixture()
def videos(tmp_path: Path) -> Path:
    root = tmp_path / "videos"
    write_video(root / "flight1.mp4")
    write_video(root / "flight2.mp4")
    write_video(root / "sub" / "flight3.avi")
    write_corrupt(root / "corrupt.mp4")
    write_empty(root / "empty.mp4")
    outside = write_video(tmp_path / "outside" / "secret.mp4")
    (root / "escape.mp4").symlink_to(outside)
    return root


def write_json(path: Path, rows: object) -> Path:
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_parquet(path)
    return path


# --------------------------------------------------------------------------- answers


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("B", "B"),
        ("B.", "B"),
        ("(B)", "B"),
        ("B)", "B"),
        (" b ", "B"),
        ("B. right", "B"),
        ("(B) right", "B"),
        ("right", "B"),
        ("  Right. ", "B"),
        ("D", None),
        ("D. up", None),
        ("up", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_answer_letter(answer, expected):
    assert normalize_answer_letter(answer, {"A": "left", "B": "right", "C": "behind"}) == expected


# --------------------------------------------------------------------------- official JSON


def test_official_happy_path(tmp_path, videos):
    rows = [
        {**urban_row(1, "flight1.mp4", "(B)"), "scene_name": "flight1"},
        {**urban_row("2", "flight2", "B. right"), "scene_name": "flight2"},  # extension probed
        {**urban_row(3, "sub/flight3", "A."), "scene_name": "flight3"},  # sub-folder, .avi
        {
            "Question_id": "v1",
            "video_id": "flight1.mp4",
            "question_category": "object_rel_direction_hard",
            "question": "Question: Standing by the sofa, where is the lamp?\nA. left\nB. right",
            "answer": "A",
            "scene_name": "scene0011_00",
        },
        {
            "Question_id": "v2",
            "video_id": "flight1.mp4",
            "question_category": "object_counting",
            "question": "Question: How many chairs are there?",
            "answer": "4",
            "scene_name": "scene0011_00",
        },
        {**urban_row(4, "flight1.mp4", "A"), "question_category": "Something New", "scene_name": "x"},
    ]
    build = load_official_json(write_json(tmp_path / "ann.json", rows), videos)
    assert build.exclusions == []
    by_id = {r.question_id: r for r in build.records}
    assert [r.answer for r in build.records] == ["B", "B", "A", "A", "4", "A"]
    assert by_id["1"].category == "landmark_position"
    assert by_id["1"].data_source == "urbanvideo"
    assert by_id["1"].choices == {"A": "left", "B": "right", "C": "behind"}
    assert by_id["1"].question == MC_QUESTION
    assert by_id["v1"].data_source == "vsibench"
    assert (by_id["v1"].category, by_id["v1"].level) == ("object_rel_direction", "hard")
    assert (by_id["v2"].kind, by_id["v2"].choices) == ("numeric", {})
    assert by_id["4"].data_source == "official"  # category not clearly from either benchmark
    assert by_id["4"].category == "something_new"  # kept: selection happens at ingest
    assert build.videos["flight2"] == str((videos / "flight2.mp4").resolve())
    assert build.videos["sub/flight3"] == str((videos / "sub" / "flight3.avi").resolve())
    assert all(Path(p).is_absolute() for p in build.videos.values())


def test_official_round_trips_to_official_format(tmp_path, videos):
    rows = [
        {**urban_row(1, "flight1.mp4"), "scene_name": "flight1"},
        {**urban_row(2, "flight2.mp4", "A"), "scene_name": "flight2"},
    ]
    build = load_official_json(write_json(tmp_path / "ann.json", rows), videos)
    again = load_official_json(write_json(tmp_path / "again.json", [r.to_official() for r in build.records]), videos)
    assert again.records == build.records


# --------------------------------------------------------------------------- bad records (JSON + UrbanVideo)


def bad_rows() -> list[dict]:
    return [
        urban_row(1, "flight1.mp4"),  # good
        urban_row(2, "nowhere.mp4"),
        urban_row(3, "nowhere"),  # no extension, none of the tried ones exists
        urban_row(4, "corrupt.mp4"),
        urban_row(5, "empty.mp4"),
        urban_row(6, "flight1.mp4", answer="D"),
        urban_row(7, "flight1.mp4", answer="up"),
        urban_row(1, "flight2.mp4"),  # duplicate of the first
        urban_row(8, "../outside/secret.mp4"),
        urban_row(9, "/etc/passwd"),
        urban_row(10, "escape.mp4"),  # symlink pointing outside videos_dir
        urban_row(11, "flight1.mp4", question=""),
        urban_row(12, "", answer="B"),
        urban_row(13, "flight1.mp4", question="Question: no choices here"),
        urban_row(14, "flight1.mp4", question_category=None),
        urban_row(None, "flight1.mp4"),
        urban_row(15, "flight2.mp4", answer="A"),  # good
    ]


EXPECTED_BAD = {
    "2": "missing_video",
    "3": "missing_video",
    "4": "unreadable_video",
    "5": "unreadable_video",
    "6": "answer_not_in_choices",
    "7": "answer_not_in_choices",
    "1": "duplicate_id",
    "8": "path_traversal",
    "9": "path_traversal",
    "10": "path_traversal",
    "11": "invalid_record",
    "12": "invalid_record",
    "13": "invalid_record",
    "14": "invalid_record",
    "row 15": "invalid_record",
}


def _assert_bad_handled(build, source: str) -> None:
    assert [r.question_id for r in build.records] == ["1", "15"]
    assert build.records[0].video_id == "flight1.mp4"  # the first "1" is kept, the later one excluded
    assert reasons(build) == EXPECTED_BAD
    assert all(e.source == source and e.detail for e in build.exclusions)
    assert set(build.videos) == {"flight1.mp4", "flight2.mp4"}
    assert {e.reason for e in build.exclusions} <= set(adapters.EXCLUSION_REASONS)


def test_official_bad_records_are_excluded(tmp_path, videos):
    rows = [{**row, "scene_name": "s"} for row in bad_rows()]
    rows.append("not an object")
    rows.append({**urban_row(16, "flight1.mp4"), "scene_name": ""})
    build = load_official_json(write_json(tmp_path / "ann.json", rows), videos)
    extra = {e.item: e.reason for e in build.exclusions if e.item in {"row 17", "16"}}
    assert extra == {"row 17": "invalid_record", "16": "invalid_record"}
    build.exclusions = [e for e in build.exclusions if e.item not in extra]
    _assert_bad_handled(build, "official")


def test_urbanvideo_bad_records_are_excluded(tmp_path, videos):
    build = load_urbanvideo(write_parquet(tmp_path / "MCQ.parquet", bad_rows()), videos)
    _assert_bad_handled(build, "urbanvideo")


def test_video_check_is_cached(tmp_path, videos, monkeypatch):
    calls = []
    real = adapters.videos._probe_video

    def counting(path, size):
        calls.append(path)
        return real(path, size)

    monkeypatch.setattr(adapters.videos, "_probe_video", counting)
    adapters.videos._VIDEO_CHECK_CACHE.clear()
    rows = [urban_row(i, "flight1.mp4") for i in range(5)] + [urban_row(9, "corrupt.mp4"), urban_row(10, "corrupt.mp4")]
    build = load_urbanvideo(write_parquet(tmp_path / "MCQ.parquet", rows), videos)
    assert len(build.records) == 5
    assert len(calls) == 2
    assert check_video(videos / "flight1.mp4") is None
    assert len(calls) == 2


# --------------------------------------------------------------------------- UrbanVideo


def test_urbanvideo_happy_path(tmp_path, videos):
    rows = [urban_row(1, "flight1.mp4"), urban_row(2, "flight2.mp4", "A. left")]
    rows.append({**urban_row(3, "flight1.mp4", "C"), "question_category": "Progress Evaluation"})
    build = load_urbanvideo(write_parquet(tmp_path / "MCQ.parquet", rows), videos)
    assert build.exclusions == []
    first, second, third = build.records
    assert first == QuestionRecord(
        question_id="1",
        video_id="flight1.mp4",
        category="landmark_position",
        question=MC_QUESTION,
        answer="B",
        scene_name="flight1.mp4",  # no scene field: each video is its own flight
        data_source="urbanvideo",
        choices={"A": "left", "B": "right", "C": "behind"},
    )
    assert second.answer == "A"
    assert third.category == "progress_evaluation"
    # Loading the official JSON made from these records gives the same records back.
    official = write_json(tmp_path / "ann.json", [r.to_official() for r in build.records])
    assert load_official_json(official, videos).records == build.records


def test_urbanvideo_uses_scene_column_when_present(tmp_path, videos):
    rows = [{**urban_row(1, "flight1.mp4"), "scene_name": "district_7"}]
    build = load_urbanvideo(write_parquet(tmp_path / "MCQ.parquet", rows), videos)
    assert build.records[0].scene_name == "district_7"


def test_urbanvideo_integer_ids_with_gap_stay_integers(tmp_path, videos):
    rows = [urban_row(1, "flight1.mp4"), urban_row(None, "flight1.mp4"), urban_row(3, "flight2.mp4")]
    frame = pd.DataFrame(rows)
    assert frame["Question_id"].dtype == float  # pandas made the ids floats
    frame.to_parquet(tmp_path / "MCQ.parquet")
    build = load_urbanvideo(tmp_path / "MCQ.parquet", videos)
    assert [r.question_id for r in build.records] == ["1", "3"]
    assert reasons(build) == {"row 1": "invalid_record"}


# --------------------------------------------------------------------------- malformed files


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "not valid JSON"),
        ('{"Question_id": 1}', "expected a JSON list"),
        ("[1, 2]", "no JSON objects"),
        (json.dumps([urban_row(1, "flight1.mp4")]), "scene_name"),
    ],
)
def test_official_malformed_file_raises(tmp_path, videos, content, needle):
    path = tmp_path / "ann.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetFormatError) as info:
        load_official_json(path, videos)
    assert str(path) in str(info.value)
    assert needle in str(info.value)


def test_official_missing_file_raises(tmp_path, videos):
    with pytest.raises(DatasetFormatError, match="file not found"):
        load_official_json(tmp_path / "nope.json", videos)


def test_official_empty_list_is_empty_build(tmp_path, videos):
    build = load_official_json(write_json(tmp_path / "ann.json", []), videos)
    assert build.records == [] and build.exclusions == []


def test_urbanvideo_malformed_files_raise(tmp_path, videos):
    not_parquet = tmp_path / "MCQ.parquet"
    not_parquet.write_text("Question_id,video_id\n1,a.mp4\n")
    with pytest.raises(DatasetFormatError, match="not a readable parquet") as info:
        load_urbanvideo(not_parquet, videos)
    assert str(not_parquet) in str(info.value)

    rows = [{k: v for k, v in urban_row(1, "flight1.mp4").items() if k != "answer"}]
    missing = write_parquet(tmp_path / "missing.parquet", rows)
    with pytest.raises(DatasetFormatError, match=r"missing required column\(s\) \['answer'\]") as info:
        load_urbanvideo(missing, videos)
    assert str(missing) in str(info.value)


# --------------------------------------------------------------------------- VSI-Bench


def vsi_row(qid: int, scene: str, qtype: str = "object_rel_distance", **over: object) -> dict:
    row = {
        "id": qid,
        "dataset": "scannet",
        "scene_name": scene,
        "question_type": qtype,
        "question": "Which object is closest to the bed?",
        "options": ["A. lamp", "B. chair", "C. table"],
        "ground_truth": "B",
    }
    row.update(over)
    return row


NUMERIC = {"options": None, "question": "How many chairs are in the room?"}


@pytest.fixture()
def vsi_videos(tmp_path: Path) -> Path:
    root = tmp_path / "vsi"
    write_video(root / "scannet" / "scene0001_00.mp4")
    write_video(root / "scannet" / "scene0002_00.mp4")
    write_corrupt(root / "scannet" / "scene_corrupt.mp4")
    return root


def test_vsibench_happy_path_folders(tmp_path, vsi_videos):
    rows = [
        vsi_row(1, "scene0001_00"),
        vsi_row(2, "scene0001_00", ground_truth="table"),  # option text → its letter
        vsi_row(3, "scene0002_00", "object_rel_direction_hard", ground_truth="A."),
        vsi_row(4, "scene0002_00", "object_rel_direction_easy"),
        vsi_row(5, "scene0001_00", "object_counting", ground_truth="4", **NUMERIC),
        vsi_row(6, "scene0001_00", "room_size_estimation", ground_truth="23.5", options=[], question="How big?"),
        vsi_row(7, "scene0001_00", "route_planning", options=np.array(["A. go left", "B. go right"])),
    ]
    build = load_vsibench(write_parquet(tmp_path / "test.parquet", rows), vsi_videos, extract_dir=tmp_path / "x")
    assert build.exclusions == []
    r = {rec.question_id: rec for rec in build.records}
    assert r["1"] == QuestionRecord(
        question_id="1",
        video_id="scannet__scene0001_00",
        category="object_rel_distance",
        question="Question: Which object is closest to the bed?\nA. lamp\nB. chair\nC. table",
        answer="B",
        scene_name="scene0001_00",
        data_source="vsibench",
        choices={"A": "lamp", "B": "chair", "C": "table"},
    )
    assert r["2"].answer == "C"
    assert (r["3"].category, r["3"].level, r["3"].answer) == ("object_rel_direction", "hard", "A")
    assert (r["4"].category, r["4"].level) == ("object_rel_direction", "easy")
    assert (r["5"].kind, r["5"].answer, r["5"].choices) == ("numeric", "4", {})
    assert r["5"].question == "Question: How many chairs are in the room?"
    assert (r["6"].kind, r["6"].answer) == ("numeric", "23.5")
    assert r["7"].choices == {"A": "go left", "B": "go right"}
    assert build.videos == {
        "scannet__scene0001_00": str((vsi_videos / "scannet" / "scene0001_00.mp4").resolve()),
        "scannet__scene0002_00": str((vsi_videos / "scannet" / "scene0002_00.mp4").resolve()),
    }
    assert vsibench_video_id("arkitscenes", "41069025") == "arkitscenes__41069025"


def test_vsibench_records_match_official_json_of_them(tmp_path, vsi_videos):
    rows = [vsi_row(1, "scene0001_00"), vsi_row(5, "scene0001_00", "object_counting", ground_truth="4", **NUMERIC)]
    build = load_vsibench(write_parquet(tmp_path / "test.parquet", rows), vsi_videos, extract_dir=tmp_path / "x")
    flat = tmp_path / "flat"
    for video_id, path in build.videos.items():
        flat.mkdir(exist_ok=True)
        (flat / f"{video_id}.mp4").write_bytes(Path(path).read_bytes())
    official = load_official_json(write_json(tmp_path / "ann.json", [r.to_official() for r in build.records]), flat)
    assert official.records == build.records


def test_vsibench_bad_records_are_excluded(tmp_path, vsi_videos):
    rows = [
        vsi_row(1, "scene0001_00"),  # good
        vsi_row(2, "scene_missing"),
        vsi_row(3, "scene_corrupt"),
        vsi_row(4, "scene0001_00", ground_truth="D"),
        vsi_row(5, "scene0001_00", ground_truth="sofa"),
        vsi_row(1, "scene0002_00"),  # duplicate id
        vsi_row(6, "../scannet/scene0001_00"),
        vsi_row(7, "scene0001_00", dataset=".."),
        vsi_row(8, "scene0001_00", "object_rel_distance", options=None),  # MC without options
        vsi_row(9, "scene0001_00", "object_counting", ground_truth="many", **NUMERIC),
        vsi_row(10, "scene0001_00", options=["A. lamp", "C. chair"]),  # letters out of order
        vsi_row(11, "", ground_truth="B"),
        vsi_row(12, "scene0001_00", "object_counting", ground_truth="3", **NUMERIC),  # good
    ]
    build = load_vsibench(write_parquet(tmp_path / "test.parquet", rows), vsi_videos, extract_dir=tmp_path / "x")
    assert [r.question_id for r in build.records] == ["1", "12"]
    assert reasons(build) == {
        "2": "missing_video",
        "3": "unreadable_video",
        "4": "answer_not_in_choices",
        "5": "answer_not_in_choices",
        "1": "duplicate_id",
        "6": "path_traversal",
        "7": "path_traversal",
        "8": "invalid_record",
        "9": "invalid_record",
        "10": "invalid_record",
        "11": "invalid_record",
    }
    assert all(e.source == "vsibench" and str(tmp_path / "test.parquet") in e.detail for e in build.exclusions)


def test_vsibench_missing_column_raises(tmp_path, vsi_videos):
    rows = [{k: v for k, v in vsi_row(1, "scene0001_00").items() if k != "ground_truth"}]
    path = write_parquet(tmp_path / "test.parquet", rows)
    with pytest.raises(DatasetFormatError, match="ground_truth") as info:
        load_vsibench(path, vsi_videos, extract_dir=tmp_path / "x")
    assert str(path) in str(info.value)


def _zip_with(path: Path, members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def test_vsibench_zip_extraction_is_lazy_and_safe(tmp_path):
    root = tmp_path / "vsi"
    video = write_video(tmp_path / "src.mp4").read_bytes()
    _zip_with(
        root / "arkitscenes.zip",
        {
            "arkitscenes/41069025.mp4": video,  # in a subfolder
            "41069042.mp4": video,
            "unused.mp4": video,  # never asked for: must not be extracted
            "broken.mp4": b"\x00" * 64,
            "../evil.mp4": video,  # zip-slip
            "/abs.mp4": video,  # absolute member
        },
        symlinks={"link.mp4": "/etc/passwd"},
    )
    rows = [
        vsi_row(1, "41069025", dataset="arkitscenes"),
        vsi_row(2, "41069042", dataset="arkitscenes"),
        vsi_row(3, "evil", dataset="arkitscenes"),
        vsi_row(4, "abs", dataset="arkitscenes"),
        vsi_row(5, "link", dataset="arkitscenes"),
        vsi_row(6, "broken", dataset="arkitscenes"),
        vsi_row(7, "not_in_zip", dataset="arkitscenes"),
        vsi_row(8, "scene0001_00", dataset="scannetpp"),  # neither folder nor zip
    ]
    parquet = write_parquet(tmp_path / "test.parquet", rows)
    extract = tmp_path / "extracted"
    build = load_vsibench(parquet, root, extract_dir=extract)
    assert [r.question_id for r in build.records] == ["1", "2"]
    assert reasons(build) == {
        "3": "path_traversal",
        "4": "path_traversal",
        "5": "path_traversal",
        "6": "unreadable_video",
        "7": "missing_video",
        "8": "missing_video",
    }
    assert build.videos["arkitscenes__41069025"] == str(extract / "arkitscenes" / "41069025.mp4")
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == [
        "extracted/arkitscenes/41069025.mp4",
        "extracted/arkitscenes/41069042.mp4",
        "extracted/arkitscenes/broken.mp4",
        "src.mp4",
        "test.parquet",
        "vsi/arkitscenes.zip",
    ]
    assert not (tmp_path / "evil.mp4").exists() and not (root / "evil.mp4").exists()

    # A second load reuses the extracted files of the same size…
    target = extract / "arkitscenes" / "41069025.mp4"
    os.utime(target, ns=(1, 1))
    again = load_vsibench(parquet, root, extract_dir=extract)
    assert again.records == build.records
    assert target.stat().st_mtime_ns == 1
    # …and re-extracts one whose size differs (e.g. an interrupted copy).
    target.write_bytes(b"partial")
    load_vsibench(parquet, root, extract_dir=extract)
    assert target.read_bytes() == video


def test_vsibench_bad_zip_and_nothing_written_in_the_videos_folder(tmp_path):
    root = tmp_path / "vsi"
    _zip_with(root / "scannet.zip", {"scene0001_00.mp4": write_video(tmp_path / "v.mp4").read_bytes()})
    (root / "arkitscenes.zip").write_bytes(b"not a zip")
    before = sorted(p.name for p in root.rglob("*"))
    rows = [vsi_row(1, "scene0001_00"), vsi_row(2, "41069025", dataset="arkitscenes")]
    build = load_vsibench(write_parquet(tmp_path / "test.parquet", rows), root, extract_dir=tmp_path / "cache")
    assert build.videos == {"scannet__scene0001_00": str(tmp_path / "cache" / "scannet" / "scene0001_00.mp4")}
    assert reasons(build) == {"2": "unreadable_video"}
    assert sorted(p.name for p in root.rglob("*")) == before, "the videos folder is never written to"


def test_vsibench_zip_read_error_excludes_the_record_write_error_stops_with_the_fix(tmp_path):
    root = tmp_path / "vsi"
    good = write_video(tmp_path / "v.mp4").read_bytes()
    _zip_with(root / "scannet.zip", {"scene0001_00.mp4": good, "scene0002_00.mp4": good})
    # Corrupt the second member's compressed bytes: its CRC check fails when read.
    data = bytearray((root / "scannet.zip").read_bytes())
    with zipfile.ZipFile(root / "scannet.zip") as archive:
        info = archive.getinfo("scene0002_00.mp4")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + 10 : start + 20] = bytes(10)
    (root / "scannet.zip").write_bytes(bytes(data))
    parquet = write_parquet(tmp_path / "test.parquet", [vsi_row(1, "scene0001_00"), vsi_row(2, "scene0002_00")])
    build = load_vsibench(parquet, root, extract_dir=tmp_path / "cache")
    assert [r.question_id for r in build.records] == ["1"] and reasons(build) == {"2": "unreadable_video"}
    assert not any(p.name.endswith(".part") for p in (tmp_path / "cache").rglob("*")), "no partial file left"

    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    with pytest.raises(adapters.ExtractionError, match=r"data\.extract_dir") as exc:
        load_vsibench(parquet, root, extract_dir=blocker / "cache")
    assert str(blocker / "cache") in str(exc.value)
    with pytest.raises(adapters.ExtractionError, match="inside the dataset folder"):
        load_vsibench(parquet, root, extract_dir=root / "extracted")
    assert isinstance(exc.value, adapters.DatasetError)


def test_vsibench_folder_wins_over_zip(tmp_path, vsi_videos):
    _zip_with(vsi_videos / "scannet.zip", {"scene0001_00.mp4": b"junk"})
    parquet = write_parquet(tmp_path / "test.parquet", [vsi_row(1, "scene0001_00")])
    build = load_vsibench(parquet, vsi_videos, extract_dir=tmp_path / "cache")
    assert build.videos["scannet__scene0001_00"] == str((vsi_videos / "scannet" / "scene0001_00.mp4").resolve())
    assert not (tmp_path / "cache").exists()
