from collections import Counter

from embodied_r.data.records import QuestionRecord
from embodied_r.data.split import assign_splits, split_scenes


def _record(qid: str, scene: str) -> QuestionRecord:
    return QuestionRecord(
        question_id=qid,
        video_id=f"{scene}_v0",
        category="object_rel_distance",
        question="Which is closest?\nA. x\nB. y",
        answer="A",
        scene_name=scene,
        data_source="test",
        choices={"A": "x", "B": "y"},
    )


def test_split_is_by_scene_and_seeded():
    scenes = [f"scene_{i:03d}" for i in range(40)]
    a = split_scenes(scenes, (0.75, 0.05, 0.20), seed=3)
    assert a == split_scenes(list(reversed(scenes)), (0.75, 0.05, 0.20), seed=3), "order of input must not matter"
    assert Counter(a.values()) == {"train": 30, "val": 2, "test": 8}
    assert a != split_scenes(scenes, (0.75, 0.05, 0.20), seed=4), "the seed must change the split"


def test_tiny_dataset_still_gets_every_split():
    a = split_scenes(["s1", "s2", "s3"], (0.75, 0.05, 0.20), seed=0)
    assert sorted(a.values()) == ["test", "train", "val"]


def test_zero_ratio_split_stays_empty():
    a = split_scenes([f"s{i}" for i in range(10)], (0.8, 0.0, 0.2), seed=0)
    assert "val" not in a.values()
    assert Counter(a.values()) == {"train": 8, "test": 2}


def test_no_scene_in_two_splits():
    records = [_record(f"q{i}", f"s{i % 7}") for i in range(50)]
    out = assign_splits(records, (0.6, 0.2, 0.2), seed=1)
    by_scene: dict[str, set[str]] = {}
    for r in out:
        by_scene.setdefault(r.scene_name, set()).add(r.split)
    assert all(len(s) == 1 for s in by_scene.values())
    assert {r.question_id for r in out} == {r.question_id for r in records}


def _sourced(qid: str, scene: str, source: str) -> QuestionRecord:
    return _record(qid, scene).model_copy(update={"data_source": source, "video_id": f"{source}_{scene}"})


def test_each_source_is_split_on_its_own():
    # a large and a small benchmark (the paper's two); the small one's scenes share names with the large one's
    big = [_sourced(f"u{i}", f"s{i}", "urbanvideo") for i in range(40)]
    small = [_sourced(f"v{i}", f"s{i}", "vsibench") for i in range(4)]
    out = assign_splits(big + small, (0.75, 0.05, 0.20), seed=2)
    for source, n in (("urbanvideo", 40), ("vsibench", 4)):
        scenes = {r.scene_name: r.split for r in out if r.data_source == source}
        assert scenes == split_scenes([f"s{i}" for i in range(n)], (0.75, 0.05, 0.20), seed=2), source
        assert set(scenes.values()) == {"train", "val", "test"}, f"{source}: every split, in the shares of ratios"


def test_one_source_is_split_as_before():
    records = [_record(f"q{i}", f"s{i % 9}") for i in range(30)]
    out = assign_splits(records, (0.6, 0.2, 0.2), seed=5)
    expected = split_scenes([r.scene_name for r in records], (0.6, 0.2, 0.2), seed=5)
    assert all(r.split == expected[r.scene_name] for r in out)
