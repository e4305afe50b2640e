"""The inbox sensor and the ``predictions`` asset on a tiny lineage's real champion, on a real Dagster instance.

Two of the embedded world's videos (renamed: they are "new") and their questions dropped into the inbox: the
sensor registers two partitions and requests two runs; the runs answer every question with the champion; a
second tick requests nothing; the champion alias moved reruns both; a bad video fails its partition alone.
"""

import json
import shutil
from pathlib import Path

import dagster as dg
import mlflow
import pytest

from embodied_r.data.ingest import read_videos
from embodied_r.data.records import read_records
from orchestration.assets.predictions import INBOX_VIDEOS
from orchestration.cli import main
from orchestration.sensors import MODEL_VERSION_TAG, inbox_sensor
from tests.orchestration.conftest import ALL_ASSETS

NAME = "embodied-r-lm"
LINEAGE = ["vlm_descriptions", "base_lm", "training_set", "warm_lm", "grpo_lm"]


def _drop(pipeline, inbox: Path, names: dict[str, str]) -> dict[str, int]:
    """Copy dataset videos into the inbox under new names, with their questions; returns questions per new name."""
    layout = pipeline.project.layout()
    videos, records = read_videos(layout.raw), read_records(layout.records)
    inbox.mkdir(exist_ok=True)
    path = inbox / "questions.json"
    rows = json.loads(path.read_text()) if path.is_file() else []
    counts = {}
    for video_id, new in names.items():
        shutil.copy(videos[video_id]["path"], inbox / f"{new}.mp4")
        mine = [r.to_official() | {"Question_id": f"{new}-{r.question_id}", "video_id": new}
                for r in records if r.video_id == video_id]  # fmt: skip
        rows += mine
        counts[new] = len(mine)
    path.write_text(json.dumps(rows))
    return counts


def _tick(pipeline, cursor: str | None = None):
    context = dg.build_sensor_context(
        instance=pipeline.instance, cursor=cursor, resources={"project": pipeline.project}
    )
    return inbox_sensor(context)


def _run(pipeline, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    return dg.materialize(ALL_ASSETS, selection=["predictions"], instance=pipeline.instance,
                          resources=pipeline.resources, partition_key=request.partition_key, tags=request.tags,
                          raise_on_error=False)  # fmt: skip


def _apply_partitions(pipeline, result: dg.SensorResult) -> list[str]:
    """What the sensor daemon does with the tick's dynamic partitions requests."""
    added = []
    for request in result.dynamic_partitions_requests or []:
        pipeline.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        added += list(request.partition_keys)
    return added


def _rows(root: Path, video: str) -> list[dict]:
    return [json.loads(line) for line in (root / "data" / "predictions" / f"{video}.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_inbox_sensor_answers_new_videos_with_the_champion(tiny_pipeline, monkeypatch):
    pipeline = tiny_pipeline()
    root = pipeline.root
    assert pipeline.materialize(LINEAGE).success
    # No champion yet: the sensor says so and asks for nothing.
    skipped = _tick(pipeline)
    assert isinstance(skipped, dg.SkipReason) and "alias 'champion'" in skipped.skip_message
    assert main(["--root", str(root), "registry", "promote", "1", "--reason", "test", "--force"]) == 0

    dataset = sorted(read_videos(pipeline.project.layout().raw))
    counts = _drop(pipeline, root / "inbox", {dataset[0]: "clip_a", dataset[1]: "clip_b"})
    questions = json.loads((root / "inbox" / "questions.json").read_text())
    questions.append({"Question_id": "clip_a-bad", "video_id": "clip_a", "question": "How far? (no options)"})
    (root / "inbox" / "questions.json").write_text(json.dumps(questions))

    first = _tick(pipeline)
    keys = ["data::clip_a", "data::clip_b"]
    assert [r.partition_key for r in first.run_requests] == keys
    assert all(r.tags[MODEL_VERSION_TAG] == "1" for r in first.run_requests)
    assert _apply_partitions(pipeline, first) == keys
    assert pipeline.instance.get_dynamic_partitions(INBOX_VIDEOS) == keys
    for request in first.run_requests:
        result = _run(pipeline, request)
        assert result.success
        meta = result.asset_materializations_for_node("predictions")[0].metadata
        video = request.partition_key.split("::")[1]
        assert meta["questions"].value == counts[video] + (video == "clip_a")
        assert meta["errors"].value == (video == "clip_a"), "the row without options is an error row"
        assert meta["model_version"].value == "1" and meta["seconds"].value > 0
        assert set(meta["seconds_per_stage"].value) == {"keyframes", "perception", "prompt", "generation"}
        assert "| answer | count |" in meta["answer_distribution"].value
        assert 0.0 <= meta["accuracy"].value <= 1.0, "the questions file gave answers"
    assert pipeline.instance.get_materialized_partitions(dg.AssetKey("predictions")) == set(keys)
    rows = _rows(root, "clip_a")
    answered = [r for r in rows if "error" not in r]
    assert len(answered) == counts["clip_a"] and {r["model"] for r in answered} == {f"{NAME} v1"}
    assert all(r["keyframe_indices"] and r["descriptions"] and "correct" in r for r in answered)
    assert all("letter" not in r and "text" not in r for r in answered), "answer and answer_text name them once"
    assert [r["question_id"] for r in rows if "error" in r] == ["clip_a-bad"]
    assert str(root) not in (root / "data" / "predictions" / "clip_a.jsonl").read_text(), "no machine paths"

    # Nothing new: nothing requested.
    second = _tick(pipeline, first.cursor)
    assert not second.run_requests and "no new or changed video" in second.skip_reason.skip_message

    # The champion moves (a second version, promoted by hand): both videos are answered again, by v2.
    uri = f"sqlite:///{root}/mlruns/mlflow.db"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    v1 = client.get_model_version(NAME, "1")
    assert client.create_model_version(NAME, v1.source, v1.run_id).version in (2, "2")  # the same weights
    assert main(["--root", str(root), "registry", "promote", "2", "--reason", "test", "--force"]) == 0
    third = _tick(pipeline, second.cursor)
    assert [r.partition_key for r in third.run_requests] == keys
    assert not _apply_partitions(pipeline, third), "the partitions exist"
    assert {r.run_key for r in third.run_requests}.isdisjoint(r.run_key for r in first.run_requests)
    assert _run(pipeline, third.run_requests[1]).success
    assert {r["model"] for r in _rows(root, "clip_b")} == {f"{NAME} v2"}

    # A replaced file and a bad video: each its own run; the bad one fails alone, with one message.
    (root / "inbox" / "clip_b.mp4").write_bytes((root / "inbox" / "clip_b.mp4").read_bytes())  # rewritten
    (root / "inbox" / "broken.mp4").write_bytes(b"not a video at all")
    questions.append({"Question_id": "b1", "video_id": "broken", "question": "Where?\nA. left\nB. right"})
    (root / "inbox" / "questions.json").write_text(json.dumps(questions))
    fourth = _tick(pipeline, third.cursor)
    assert sorted(r.partition_key for r in fourth.run_requests) == ["data::broken", "data::clip_b"]
    assert _apply_partitions(pipeline, fourth) == ["data::broken"]
    outcomes = {r.partition_key: _run(pipeline, r) for r in fourth.run_requests}
    assert outcomes["data::clip_b"].success
    failed = outcomes["data::broken"]
    assert not failed.success
    failure = next(e for e in failed.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    message = failure.step_failure_data.user_failure_data.description
    assert "broken.mp4" in message and "unreadable_video" in message and "remove it and its questions" in message
    assert not (root / "data" / "predictions" / "broken.jsonl").exists()

    # The DVC stage's command: every inbox video in one run, the bad one failing alone (exit 1), then without it.
    monkeypatch.setenv("DAGSTER_HOME", str(root / ".dagster_home"))
    assert main(["--root", str(root), "materialize", "predictions", "--all-partitions"]) == 1
    (root / "inbox" / "broken.mp4").unlink()
    assert main(["--root", str(root), "materialize", "predictions", "--all-partitions"]) == 0
    assert sorted(p.name for p in (root / "data" / "predictions").iterdir()) == ["clip_a.jsonl", "clip_b.jsonl"]


def test_an_empty_inbox_is_an_empty_output(tiny_project, monkeypatch, capsys):
    """``dvc repro`` on a checkout with nothing in the inbox: the stage succeeds and writes an empty folder."""
    monkeypatch.setenv("DAGSTER_HOME", str(tiny_project / ".dagster_home"))
    assert main(["--root", str(tiny_project), "materialize", "predictions", "--all-partitions"]) == 0
    assert "nothing to predict" in capsys.readouterr().out
    assert list((tiny_project / "data" / "predictions").iterdir()) == []


def test_the_sensor_is_in_the_code_location_stopped_until_started():
    """Visible in the UI (Automation) with its job; stopped by default: each dropped file costs an inference."""
    from orchestration.definitions import defs

    sensor = defs.resolve_sensor_def("inbox_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert sensor.job_name == "predictions_job"
    assert defs.resolve_job_def("predictions_job").partitions_def.name == INBOX_VIDEOS
