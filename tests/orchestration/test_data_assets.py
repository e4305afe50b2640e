"""``raw_videos`` materialized in-process on a tiny embedded world, on a real Dagster instance."""

import json

import dagster as dg
import pytest
import yaml

from embodied_r.data.records import read_records
from orchestration.assets.data import raw_videos
from orchestration.partitions import VIDEOS
from orchestration.resources import ProjectResource


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
    assert sorted(instance.get_dynamic_partitions(VIDEOS)) == sorted(videos)
    for entry in videos.values():
        assert (raw / entry["path"]).is_file() and len(entry["sha256"]) == 64

    # Fewer scenes: partitions of videos that no longer exist are removed.
    params = yaml.safe_load((tiny_project / "params.yaml").read_text())
    params["synthetic"]["scenes"] = 2
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
    assert dg.materialize([raw_videos], instance=instance, resources=resources).success
    videos = json.loads((raw / "videos.json").read_text())
    assert len(videos) == 2
    assert sorted(instance.get_dynamic_partitions(VIDEOS)) == sorted(videos)


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
