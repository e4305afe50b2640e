"""``keyframes`` over every video partition in one run, on a real Dagster instance."""

import json

import dagster as dg
import pytest
import yaml

from orchestration.assets.data import raw_videos
from orchestration.assets.keyframes import FAILURES, keyframes
from orchestration.partitions import VIDEOS, all_videos_run_tags, video_partition_key
from orchestration.resources import ProjectResource


@pytest.mark.slow
def test_keyframes_one_run_for_all_partitions_and_a_bad_video_fails_alone(tiny_project):
    instance = dg.DagsterInstance.ephemeral()
    resources = {"project": ProjectResource(root=str(tiny_project))}
    assert dg.materialize([raw_videos], instance=instance, resources=resources).success

    def all_keyframes() -> dg.ExecuteInProcessResult:
        """``keyframes`` over every video partition, in one run."""
        return dg.materialize(
            [raw_videos, keyframes],
            selection=["keyframes"],
            instance=instance,
            resources=resources,
            tags=all_videos_run_tags(instance, resources["project"]),
            raise_on_error=False,
        )

    videos = json.loads((tiny_project / "data" / "raw" / "videos.json").read_text())
    bad = sorted(videos)[1]
    (tiny_project / "data" / "raw" / videos[bad]["path"]).write_bytes(b"\x00not a video" * 100)

    result = all_keyframes()
    assert not result.success, "with max_failed_share 0 a failed video fails the run"
    assert len(instance.get_runs()) == 2, "all partitions ran in a single run"
    materialized = instance.get_materialized_partitions(dg.AssetKey("keyframes"))
    assert materialized == {video_partition_key("data", v) for v in set(videos) - {bad}}
    out = tiny_project / "data" / "keyframes"
    failure = json.loads((out / FAILURES / f"{bad}.json").read_text())
    assert bad in failure["error"] or "video" in failure["error"].lower()
    for video_id in set(videos) - {bad}:
        manifest = json.loads((out / video_id / "manifest.json").read_text())
        assert 4 <= manifest["count"] <= 32
        assert (out / video_id / "contact_sheet.png").is_file()

    events = instance.fetch_materializations(dg.AssetKey("keyframes"), limit=10).records
    metadata = events[0].asset_materialization.metadata
    assert {"count", "mean_overlap", "decode_seconds", "contact_sheet"} <= set(metadata)
    assert "data:image/png;base64," in metadata["contact_sheet"].value

    # Tolerating failures: the run succeeds, the failure stays reported.
    params = yaml.safe_load((tiny_project / "params.yaml").read_text())
    params["keyframes"]["max_failed_share"] = 0.5
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
    again = all_keyframes()
    assert again.success
    assert (out / FAILURES / f"{bad}.json").is_file()
    assert sorted(instance.get_dynamic_partitions(VIDEOS)) == [video_partition_key("data", v) for v in sorted(videos)]
