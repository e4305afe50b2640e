"""The access-recording view of validated params (embodied_r.config.access): which keys code reads."""

import json

from embodied_r.config import Params, TrackingConfig
from embodied_r.config.access import leaf_keys, recording_view
from embodied_r.rewards.config import RewardSchedule


def _view() -> tuple[Params, list[str]]:
    reads: list[str] = []
    return recording_view(Params(), reads.append), reads


def test_reading_a_value_records_its_dotted_path_and_opening_a_section_records_nothing():
    params, reads = _view()
    section = params.tracking
    assert reads == []
    assert section.registered_model == Params().tracking.registered_model
    assert params.data_dir == "data"
    assert reads == ["tracking.registered_model", "data_dir"]


def test_the_view_is_the_model_for_isinstance_pydantic_and_copies():
    params, reads = _view()
    assert isinstance(params, Params) and isinstance(params.tracking, TrackingConfig)
    assert params.model_dump() == Params().model_dump()
    rebuilt = Params.model_validate({"tracking": params.tracking})  # a section passed into another model
    copy = params.tracking.model_copy(update={"experiment": "x"})
    reads.clear()
    _ = rebuilt.tracking.tracking_uri, copy.experiment, copy.artifact_root
    assert reads == ["tracking.tracking_uri", "tracking.experiment", "tracking.artifact_root"]


def test_dumping_a_section_reads_every_value_under_it():
    params, reads = _view()
    params.rewards.model_dump(mode="json")
    assert set(reads) == set(leaf_keys(Params().rewards, "rewards"))
    assert "rewards.judge.model" in reads and "rewards.schedule" in reads  # a schedule is one value
    assert isinstance(Params().rewards.schedule, RewardSchedule)


def test_the_whole_dump_records_the_sections_taken_from_it_or_everything_when_serialized():
    params, reads = _view()
    dump = params.model_dump(mode="json")
    settings = {k: dump[k] for k in ("lm", "tracking")}
    assert set(reads) == set(leaf_keys(Params().lm, "lm") + leaf_keys(Params().tracking, "tracking"))
    reads.clear()
    json.dumps(dump)
    assert set(reads) == set(leaf_keys(Params()))
    assert json.loads(json.dumps(settings)) == {k: Params().model_dump(mode="json")[k] for k in ("lm", "tracking")}


def test_the_view_leaves_the_model_it_wraps_unrecorded():
    model = Params()
    reads: list[str] = []
    recording_view(model, reads.append)
    _ = model.tracking.registered_model, model.model_dump()
    assert reads == []
