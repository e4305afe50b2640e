"""``vlm_descriptions`` and its blocking Great Expectations checks, on a real Dagster instance."""

import json

import dagster as dg
import pytest

from embodied_r.perception.stage import read_samples
from embodied_r.validation import SUITE_NAMES
from orchestration.assets.data import raw_videos
from orchestration.assets.keyframes import keyframes
from orchestration.assets.perception import vlm_descriptions
from orchestration.checks import CHECKS_FILE, perception_data_checks


@pytest.mark.slow
def test_descriptions_materialize_checks_pass_and_rerun_makes_no_calls(tiny_pipeline):
    pipeline = tiny_pipeline()
    tiny_project = pipeline.root
    first = pipeline.materialize(["vlm_descriptions"])
    assert first.success
    checks = first.get_asset_check_evaluations()
    assert sorted(c.check_name for c in checks) == sorted(SUITE_NAMES)
    assert all(c.passed for c in checks)
    meta = first.asset_materializations_for_node("vlm_descriptions")[0].metadata
    records = (tiny_project / "data" / "raw" / "records.jsonl").read_text().splitlines()
    assert meta["samples"].value == len(records)
    assert meta["backend_calls"].value > 0 and meta["cache_hits"].value == 0
    samples = read_samples(tiny_project / "data" / "descriptions" / "samples.jsonl")
    assert all(s.frames[0].action is None and s.frames[0].observation for s in samples)
    outcome = json.loads((tiny_project / "data" / "descriptions" / CHECKS_FILE).read_text())
    assert all(v["success"] for v in outcome.values())

    before = (tiny_project / "data" / "descriptions" / "samples.jsonl").read_bytes()
    second = pipeline.materialize(["vlm_descriptions"])
    meta = second.asset_materializations_for_node("vlm_descriptions")[0].metadata
    assert meta["backend_calls"].value == 0, "unchanged data must not call the backend again"
    assert meta["cache_hits"].value > 0
    assert (tiny_project / "data" / "descriptions" / "samples.jsonl").read_bytes() == before


@pytest.mark.slow
def test_failing_check_blocks_downstream_and_shows_failing_examples(tiny_pipeline):
    pipeline = tiny_pipeline(validation={"min_description_chars": 3000})  # no real description is that long
    tiny_project = pipeline.root

    ran = []

    @dg.asset(deps=[vlm_descriptions])
    def downstream_of_descriptions() -> None:  # stands in for training_set
        ran.append(True)

    result = dg.materialize(
        [raw_videos, keyframes, vlm_descriptions, perception_data_checks, downstream_of_descriptions],
        selection=["vlm_descriptions", "downstream_of_descriptions"],
        instance=pipeline.instance,
        resources=pipeline.resources,
        raise_on_error=False,
    )
    assert not result.success
    assert ran == [], "a failing blocking check must stop downstream assets"
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    assert [c.check_name for c in failed] == ["descriptions"]
    table = failed[0].metadata["result"].value
    first_id = read_samples(tiny_project / "data" / "descriptions" / "samples.jsonl")[0].question_id
    assert "length" in table and first_id in table, "failing examples are shown by question id"
    outcome = json.loads((tiny_project / "data" / "descriptions" / CHECKS_FILE).read_text())
    assert outcome["descriptions"]["success"] is False and outcome["split"]["success"] is True


def test_descriptions_before_the_raw_videos_fail_naming_the_asset_to_materialize(tiny_project):
    from tests.orchestration.conftest import TinyPipeline

    result = TinyPipeline(tiny_project).materialize(["vlm_descriptions"], raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.user_failure_data.description
    assert str(tiny_project / "data" / "raw" / "records.jsonl") in message
    assert "materialize raw_videos first" in message


@pytest.mark.slow
def test_a_video_whose_key_frames_failed_is_dropped_with_its_questions_within_the_bound(
    tiny_project, monkeypatch, capsys
):
    """keyframes.max_failed_share bounds the videos left out; within it vlm_descriptions succeeds without them.

    Run as a user does, with ``embodied-r materialize`` (a persistent instance under the project)."""
    import yaml

    from embodied_r.layout import Layout
    from embodied_r.report import render_summary
    from orchestration.cli import main

    monkeypatch.setenv("DAGSTER_HOME", str(tiny_project / ".dagster_home"))
    params = yaml.safe_load((tiny_project / "params.yaml").read_text())
    params["synthetic"]["videos_per_scene"] = 2  # each split keeps a video when one is dropped
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
    cli = ["--root", str(tiny_project), "materialize"]
    assert main([*cli, "raw_videos"]) == 0
    raw = tiny_project / "data" / "raw"
    videos = json.loads((raw / "videos.json").read_text())
    bad = sorted(videos)[1]
    (raw / videos[bad]["path"]).write_bytes(b"\x00not a video" * 100)  # fails at key frames, after ingest
    records = [json.loads(line) for line in (raw / "records.jsonl").read_text().splitlines()]
    bad_questions = sorted(r["question_id"] for r in records if r["video_id"] == bad)
    assert main([*cli, "keyframes", "--all-partitions"]) == 1  # 1 of 6 videos > the default share 0.0
    capsys.readouterr()

    # Beyond the bound (the default 0.0): the step fails naming the video and the bound.
    assert main([*cli, "vlm_descriptions"]) == 1
    err = capsys.readouterr().err
    assert bad in err and "keyframes.max_failed_share=0.0" in err and "1 of 6 videos" in err

    # Within the bound: described without the failed video's questions, which are listed with the fix.
    params["keyframes"]["max_failed_share"] = 0.2
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
    assert main([*cli, "vlm_descriptions"]) == 0
    instance = dg.DagsterInstance.get()
    event = instance.fetch_materializations(dg.AssetKey("vlm_descriptions"), limit=1).records[0]
    meta = event.asset_materialization.metadata
    assert meta["dropped_videos"].value == 1 and meta["dropped_questions"].value == len(bad_questions)
    assert meta["failures"].value == 0, "a failed video's questions are not perception failures"
    out = tiny_project / "data" / "descriptions"
    described = {s.question_id for s in read_samples(out / "samples.jsonl")}
    assert described == {r["question_id"] for r in records} - set(bad_questions)
    dropped = [json.loads(line) for line in (out / "dropped.jsonl").read_text().splitlines()]
    assert [d["question_id"] for d in dropped] == bad_questions
    assert all(d["video_id"] == bad and "rematerialize raw_videos and keyframes" in d["error"] for d in dropped)

    # `embodied-r summary` counts them.
    summary = render_summary(Layout(tiny_project))
    assert "Key frames: 5 of 6 videos; 1 failed {'unreadable_video': 1}" in summary
    assert f"Descriptions: {len(described)} questions described" in summary
    assert f"{len(bad_questions)} left out because their video's key frames failed" in summary
