"""The tables the suites validate, and the validation config."""

from __future__ import annotations

import time

import pydantic
import pytest
from validation_samples import good_batch, make_frames, make_sample

from embodied_r.validation import SUITE_NAMES, ValidationConfig, build_tables, run_suites
from embodied_r.validation.frames import FRAME_COLUMNS, SAMPLE_COLUMNS, SCENE_SPLIT_COLUMNS


def test_tables_have_the_documented_columns() -> None:
    tables = build_tables(good_batch())
    assert list(tables.samples.columns) == list(SAMPLE_COLUMNS)
    assert list(tables.frames.columns) == list(FRAME_COLUMNS)
    assert list(tables.scene_splits.columns) == list(SCENE_SPLIT_COLUMNS)
    empty = build_tables([])
    assert [len(empty.samples.columns), len(empty.frames.columns)] == [len(SAMPLE_COLUMNS), len(FRAME_COLUMNS)]


def test_sample_row_summarises_its_frames() -> None:
    frames = make_frames(5, actions=["move left", None, "move left", None])
    frames[2] = frames[2].model_copy(update={"observation": "  ", "raw": "I'm sorry, I cannot help with that."})
    sample = make_sample("q1", frames=frames, answer="E")
    row = build_tables([sample], ValidationConfig().refusal_patterns).samples.iloc[0]
    assert row["n_keyframes"] == row["n_frames"] == 5
    assert row["n_non_first_frames"] == 4
    assert row["n_unparsable_actions"] == 2
    assert row["unparsable_action_share"] == 0.5
    assert row["n_descriptions_empty"] == 1
    assert row["min_description_chars"] == 0
    assert row["has_refusal"]
    assert row["choices"] == "A,B,C,D"
    assert not row["answer_in_choices"]


def test_frame_rows_and_scene_splits() -> None:
    samples = [make_sample("q1", "s1", "train", n_frames=4), make_sample("q2", "s1", "test", n_frames=5)]
    tables = build_tables(samples)
    assert len(tables.frames) == 9
    assert tables.frames["is_first"].sum() == 2
    assert tables.frames.loc[tables.frames["is_first"], "action"].isna().all()
    assert tables.scene_splits[["scene_name", "split", "n_samples"]].values.tolist() == [
        ["s1", "test", 1],
        ["s1", "train", 1],
    ]


def test_config_rejects_inverted_bounds_and_bad_regexes() -> None:
    with pytest.raises(pydantic.ValidationError, match="min_keyframes"):
        ValidationConfig(min_keyframes=33, max_keyframes=32)
    with pytest.raises(pydantic.ValidationError, match="min_description_chars"):
        ValidationConfig(min_description_chars=50, max_description_chars=10)
    with pytest.raises(pydantic.ValidationError, match="not a valid regex"):
        ValidationConfig(refusal_patterns=["(unclosed"])
    with pytest.raises(pydantic.ValidationError):
        ValidationConfig(unknown_field=1)


def test_default_refusal_patterns_catch_refusals_not_descriptions() -> None:
    import re

    patterns = [re.compile(p) for p in ValidationConfig().refusal_regexes()]
    refusals = [
        "I'm sorry, I can't view images",
        "I cannot assist with that request.",
        "As an AI language model, I cannot see the image.",
        "i can't analyze the images you sent",
        "I am unable to view the frames.",
    ]
    descriptions = [
        "A red car is parked ahead-left; a sorry-looking tree stands to the right.",
        "1. move forward\n2. The road continues ahead.\n3. The AI lab sign is visible on the left.",
    ]
    for text in refusals:
        assert any(p.search(text) for p in patterns), text
    for text in descriptions:
        assert not any(p.search(text) for p in patterns), text


@pytest.mark.slow
def test_five_thousand_samples_validate_quickly() -> None:
    samples = [
        make_sample(f"q{i}", f"s{i % 200}", ("train", "val", "test")[i % 200 % 3], n_frames=20, seed=i)
        for i in range(5000)
    ]
    started = time.perf_counter()
    outcomes = run_suites(samples, ValidationConfig())
    elapsed = time.perf_counter() - started
    assert [o.name for o in outcomes] == list(SUITE_NAMES)
    assert all(o.success for o in outcomes)
    assert elapsed < 30, f"{elapsed:.1f}s"
