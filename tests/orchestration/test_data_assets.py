"""``raw_videos`` materialized in-process on a tiny embedded world, on a real Dagster instance."""

import json

import dagster as dg
import pytest
import yaml

from embodied_r.data.records import read_records
from orchestration.assets.data import raw_videos
from orchestration.assets.keyframes import keyframes
from orchestration.partitions import (
    VIDEOS,
    PartitionsError,
    all_videos_run_tags,
    sync_dataset_partitions,
    video_ids_of,
    video_partition_key,
)
from orchestration.resources import ProjectResource


def _keys(data_dir: str, videos) -> list[str]:
    return [video_partition_key(data_dir, v) for v in sorted(videos)]


@pytest.mark.slow
def test_raw_videos_materializes_and_registers_one_partition_per_video(tiny_project):
    instance = dg.DagsterInstance.ephemeral()
    resources = {"project": ProjectResource(root=str(tiny_project))}
    result = dg.materialize([raw_videos], instance=instance, resources=resources)
    assert result.success

    metadata = result.asset_materializations_for_node("raw_videos")[0].metadata
    raw = tiny_project / "data" / "raw"
    records = read_records(raw / "records.jsonl")
    videos = json.loads((raw / "videos.json").read_text())
    assert metadata["questions"].value == len(records) > 0
    assert metadata["videos"].value == len(videos) == 3
    assert set(metadata["questions_per_split"].value) == {"train", "val", "test"}
    assert instance.get_dynamic_partitions(VIDEOS) == _keys("data", videos)
    for entry in videos.values():
        assert (raw / entry["path"]).is_file() and len(entry["sha256"]) == 64

    # Fewer scenes: partitions of videos that no longer exist are removed.
    params = yaml.safe_load((tiny_project / "params.yaml").read_text())
    params["synthetic"]["scenes"] = 2
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
    assert dg.materialize([raw_videos], instance=instance, resources=resources).success
    videos = json.loads((raw / "videos.json").read_text())
    assert len(videos) == 2
    assert instance.get_dynamic_partitions(VIDEOS) == _keys("data", videos)


@pytest.mark.slow
def test_two_params_files_keep_their_own_partitions_and_a_run_refuses_the_other_datasets(tiny_project):
    """Issue 36 item 2: ``raw_videos`` under B no longer replaces A's partitions, and a per-video run of A never
    processes B's videos (B's two videos are ids of A's three: with bare keys, A's run silently did B's two)."""
    instance = dg.DagsterInstance.ephemeral()
    params = yaml.safe_load((tiny_project / "params.yaml").read_text())
    (tiny_project / "b.yaml").write_text(
        yaml.safe_dump({**params, "data_dir": "data-b", "synthetic": {**params["synthetic"], "scenes": 2}})
    )
    project_a = ProjectResource(root=str(tiny_project))
    project_b = ProjectResource(root=str(tiny_project), params_file="b.yaml")
    assert dg.materialize([raw_videos], instance=instance, resources={"project": project_a}).success
    assert dg.materialize([raw_videos], instance=instance, resources={"project": project_b}).success

    videos_a = json.loads((tiny_project / "data" / "raw" / "videos.json").read_text())
    videos_b = json.loads((tiny_project / "data-b" / "raw" / "videos.json").read_text())
    assert set(videos_b) < set(videos_a), "the scenario of the issue: B's video ids are some of A's"
    assert instance.get_dynamic_partitions(VIDEOS) == _keys("data", videos_a) + _keys("data-b", videos_b)

    # A run over B's partitions (what the UI could launch) with A's params fails, naming the keys; nothing is done.
    result = dg.materialize(
        [raw_videos, keyframes],
        selection=["keyframes"],
        instance=instance,
        resources={"project": project_a},
        tags=all_videos_run_tags(instance, project_b),
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    assert "PartitionsError" in failure.to_string() and "data-b::" in failure.to_string()
    assert not instance.get_materialized_partitions(dg.AssetKey("keyframes"))
    assert not (tiny_project / "data" / "keyframes").exists()

    # A's all-videos run is A's three videos, computed from A's videos.json.
    tags = all_videos_run_tags(instance, project_a)
    keys = instance.get_dynamic_partitions(VIDEOS)
    start, end = (
        keys.index(tags["dagster/asset_partition_range_start"]),
        keys.index(tags["dagster/asset_partition_range_end"]),
    )
    assert keys[start : end + 1] == _keys("data", videos_a)


def test_each_datasets_partitions_stay_contiguous_and_keep_their_history():
    """A range run selects the keys between two ends, so a dataset whose videos change is re-added in one block."""
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(VIDEOS, ["v0", "v1"])  # bare keys from before keys carried their dataset
    assert sync_dataset_partitions(instance, "data", ["v0", "v1"]) == (2, 2)
    assert sync_dataset_partitions(instance, "./data-b/", ["v0"]) == (1, 0)
    instance.report_runless_asset_event(dg.AssetMaterialization("keyframes", partition="data::v1"))

    assert sync_dataset_partitions(instance, "data", ["v0", "v1", "v2"]) == (1, 0)
    assert instance.get_dynamic_partitions(VIDEOS) == ["data-b::v0", "data::v0", "data::v1", "data::v2"]
    assert instance.get_materialized_partitions(dg.AssetKey("keyframes")) == {"data::v1"}, "history kept"
    assert sync_dataset_partitions(instance, "data", ["v0", "v1", "v2"]) == (0, 0)
    assert sync_dataset_partitions(instance, "data", ["v2"]) == (0, 2)
    assert instance.get_dynamic_partitions(VIDEOS) == ["data-b::v0", "data::v2"]

    assert video_ids_of(["data::v1", "data::v2"], "data") == ["v1", "v2"]
    with pytest.raises(PartitionsError, match=r"\['data-b::v0'\] \(1 of 2\) are not videos of data_dir 'data'"):
        video_ids_of(["data::v1", "data-b::v0"], "data")


def test_all_videos_run_tags_without_raw_videos_names_the_fix(tiny_project):
    with pytest.raises(PartitionsError, match=r"videos\.json is missing: materialize raw_videos first"):
        all_videos_run_tags(dg.DagsterInstance.ephemeral(), ProjectResource(root=str(tiny_project)))


@pytest.mark.slow
def test_raw_videos_is_byte_deterministic(tiny_project):
    resources = {"project": ProjectResource(root=str(tiny_project))}
    raw = tiny_project / "data" / "raw"

    def snapshot() -> dict[str, bytes]:
        return {str(p.relative_to(raw)): p.read_bytes() for p in sorted(raw.rglob("*")) if p.is_file()}

    assert dg.materialize([raw_videos], instance=dg.DagsterInstance.ephemeral(), resources=resources).success
    first = snapshot()
    assert dg.materialize([raw_videos], instance=dg.DagsterInstance.ephemeral(), resources=resources).success
    assert snapshot() == first
