"""Real Great Expectations validations of the perception data-quality suites (no mocks).

A good batch passes every suite; each bad batch breaks exactly the expectations it targets,
names the offending question (or scene) among the failing examples, and leaves the other
expectations passing. One GX context (the session ``validator`` fixture) serves all tests.
"""

from __future__ import annotations

import pytest
from validation_samples import good_batch, make_frames, make_sample

from embodied_r.perception.records import DescribedSample, FrameDescription
from embodied_r.validation import (
    SUITE_NAMES,
    PerceptionValidator,
    SuiteOutcome,
    ValidationConfig,
    build_tables,
    run_suite,
)

GOOD_OBSERVATION = "Newly visible: a tall glass tower straight ahead and a bus stop to the right."


def _validate(validator: PerceptionValidator, samples: list[DescribedSample]) -> list[SuiteOutcome]:
    return validator.run(build_tables(samples, validator.cfg.refusal_patterns))


def _failing(outcomes: list[SuiteOutcome]) -> set[tuple[str, str]]:
    """(suite, check description) of every failing expectation."""
    return {(outcome.name, failed.description) for outcome in outcomes for failed in outcome.failed}


def _failing_keys(outcomes: list[SuiteOutcome], suite: str, check_prefix: str) -> set[str]:
    outcome = next(o for o in outcomes if o.name == suite)
    matches = [e for e in outcome.expectations if e.description.startswith(check_prefix)]
    assert matches, f"no check starting with {check_prefix!r} in suite {suite!r}"
    return {example.key for expectation in matches for example in expectation.examples}


def _with_frame(frames: list[FrameDescription], position: int, **changes: object) -> list[FrameDescription]:
    frames = list(frames)
    frames[position] = frames[position].model_copy(update=changes)
    return frames


def test_good_batch_passes_every_suite(validator: PerceptionValidator) -> None:
    outcomes = _validate(validator, good_batch())
    assert [o.name for o in outcomes] == list(SUITE_NAMES)
    assert _failing(outcomes) == set()
    assert all(o.success for o in outcomes)
    for outcome in outcomes:
        assert outcome.expectations, outcome.name
        for expectation in outcome.expectations:
            assert expectation.exception is None
            assert expectation.expectation_type.startswith("expect_")


# Each case: the bad sample(s) added to the good batch, the failing (suite, check prefix)s, and the key
# (question_id or scene) that must appear among the failing examples of the first of them.
BAD_CASES = {
    "empty description": (
        lambda: [make_sample("q_bad", frames=_with_frame(make_frames(6), 2, observation="", raw=""))],
        {("descriptions", "description non-empty"), ("descriptions", "description length within")},
        "q_bad",
    ),
    "whitespace description": (
        lambda: [make_sample("q_bad", frames=_with_frame(make_frames(6), 0, observation="   \n ", raw=" "))],
        {("descriptions", "description non-empty"), ("descriptions", "description length within")},
        "q_bad",
    ),
    "too few key frames": (
        lambda: [make_sample("q_bad", n_frames=2)],
        {("keyframes", "key frames per sample within")},
        "q_bad",
    ),
    "too many key frames": (
        lambda: [make_sample("q_bad", n_frames=40)],
        {("keyframes", "key frames per sample within")},
        "q_bad",
    ),
    "action outside the vocabulary": (
        lambda: [make_sample("q_bad", frames=_with_frame(make_frames(6), 3, action="fly sideways"))],
        {("actions", "parsed actions in the ten-action vocabulary")},
        "q_bad",
    ),
    "action on the first frame": (
        lambda: [make_sample("q_bad", frames=_with_frame(make_frames(6), 0, action="move forward"))],
        {("actions", "first frame has no action")},
        "q_bad",
    ),
    "unparsable actions over the share": (
        # 6 samples x 7 unparsable frames = 42 of 34 + 42 non-first frames: 55% > 20%.
        lambda: [make_sample(f"q_bad_{i}", frames=make_frames(8, actions=[None] * 7)) for i in range(6)],
        {("actions", "unparsable actions on at most")},
        "q_bad_0",
    ),
    "description too short": (
        lambda: [make_sample("q_bad", frames=_with_frame(make_frames(6), 4, observation="Too short."))],
        {("descriptions", "description length within")},
        "q_bad",
    ),
    "description too long": (
        lambda: [make_sample("q_bad", frames=_with_frame(make_frames(6), 1, observation="x" * 10_000))],
        {("descriptions", "description length within")},
        "q_bad",
    ),
    "refusal": (
        lambda: [
            make_sample(
                "q_bad",
                frames=_with_frame(
                    make_frames(6),
                    2,
                    observation="I'm sorry, I can't view images",
                    raw="I'm sorry, I can't view images",
                ),
            )
        ],
        {("descriptions", "no refusal text")},
        "q_bad",
    ),
    "answer not among the choices": (
        lambda: [make_sample("q_bad", answer="E", choices=("A", "B", "C", "D"))],
        {("answers", "answer letter among the choices")},
        "q_bad",
    ),
    "answer not a letter": (
        lambda: [make_sample("q_bad", answer="left", choices=("A", "B", "C", "D"))],
        {("answers", "answer letter among the choices"), ("answers", "answer is a letter")},
        "q_bad",
    ),
    "scene in two splits": (
        lambda: [make_sample("q_bad", scene_name="scene_d", split="train")],
        {("split", "each scene in exactly one split")},
        "scene_d",
    ),
    "frames and key frames disagree": (
        lambda: [make_sample("q_bad").model_copy(update={"keyframe_indices": [0, 5, 10, 15, 20]})],
        {("keyframes", "one description per key frame")},
        "q_bad",
    ),
    "duplicate question": (
        lambda: [make_sample("q_scene_a_0")],
        {("keyframes", "one sample per question")},
        "q_scene_a_0",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_each_expectation_fails_on_its_bad_data(validator: PerceptionValidator, case: str) -> None:
    make_bad, expected, offender = BAD_CASES[case]
    outcomes = _validate(validator, good_batch() + make_bad())

    failing = _failing(outcomes)
    # Exactly the targeted checks fail (matched by prefix); every other expectation still passes.
    unexpected = {(s, c) for s, c in failing if not any(s == es and c.startswith(ep) for es, ep in expected)}
    missing = {(es, ep) for es, ep in expected if not any(s == es and c.startswith(ep) for s, c in failing)}
    assert not unexpected, f"also failed: {unexpected}"
    assert not missing, f"did not fail: {missing}"
    failed_suites = {suite for suite, _ in expected}
    assert {o.name for o in outcomes if not o.success} == failed_suites

    suite, prefix = sorted(expected)[0]
    assert offender in _failing_keys(outcomes, suite, prefix)
    for s, p in expected:
        keys = _failing_keys(outcomes, s, p)
        assert keys, f"{s}/{p} failed without examples"
        assert keys <= {"q_bad", "scene_d", "q_scene_a_0"} | {f"q_bad_{i}" for i in range(6)}


def test_failing_examples_are_readable_and_capped(validator: PerceptionValidator) -> None:
    bad = [
        make_sample(f"q_long_{i}", frames=_with_frame(make_frames(5), 1, observation="y" * 10_000)) for i in range(15)
    ]
    outcomes = _validate(validator, good_batch() + bad)
    descriptions = next(o for o in outcomes if o.name == "descriptions")
    (length,) = [e for e in descriptions.failed]
    assert length.unexpected_count == 15
    assert len(length.examples) == validator.cfg.max_failing_examples
    example = length.examples[0]
    assert example.key == "q_long_0"
    assert example.ids == {"frame_position": "1"}
    assert "10000 chars" in example.value
    assert len(example.value) < 200

    markdown = descriptions.to_markdown()
    assert "❌" in markdown
    assert "q_long_0 (frame_position=1)" in markdown
    assert markdown.count("\n") == 3 + len(descriptions.expectations)
    assert "FAILED" in descriptions.summary()
    # Dagster metadata wants plain JSON.
    assert descriptions.model_dump(mode="json")["expectations"][2]["examples"][0]["key"] == "q_long_0"


def test_split_failure_names_the_scene_and_both_splits(validator: PerceptionValidator) -> None:
    outcomes = _validate(validator, [*good_batch(), make_sample("q_moved", scene_name="scene_c", split="test")])
    split = next(o for o in outcomes if o.name == "split")
    (unique,) = split.failed
    assert {example.key for example in unique.examples} == {"scene_c"}
    assert {example.ids["split"] for example in unique.examples} == {"val", "test"}
    assert any("q_moved" in example.ids["question_ids"] for example in unique.examples)


def test_unparsable_share_under_the_threshold_passes(validator: PerceptionValidator) -> None:
    # One unparsable action among ~60 non-first frames: under 20%, so the suite passes (and lists it).
    bad = [make_sample("q_one_none", frames=_with_frame(make_frames(6), 2, action=None))]
    outcomes = _validate(validator, good_batch() + bad)
    actions = next(o for o in outcomes if o.name == "actions")
    assert actions.success
    share = next(e for e in actions.expectations if e.description.startswith("unparsable"))
    assert share.unexpected_count == 1
    assert [example.key for example in share.examples] == ["q_one_none"]


def test_per_sample_unparsable_share_is_optional() -> None:
    cfg = ValidationConfig(max_unparsable_action_share=1.0, max_unparsable_action_share_per_sample=0.5)
    bad = make_sample("q_mostly_none", frames=make_frames(5, actions=[None, None, None, "move left"]))
    outcome = run_suite("actions", [*good_batch(), bad], cfg)
    assert not outcome.success
    (per_sample,) = outcome.failed
    assert per_sample.table == "samples"
    assert per_sample.column == "unparsable_action_share"
    assert [example.key for example in per_sample.examples] == ["q_mostly_none"]
    assert per_sample.examples[0].value == "0.75"


def test_numeric_questions_skip_the_answer_checks(validator: PerceptionValidator) -> None:
    numeric = make_sample("q_numeric", answer="3.5", choices=())
    outcomes = _validate(validator, [*good_batch(), numeric])
    assert next(o for o in outcomes if o.name == "answers").success


def test_empty_batch_fails_on_row_count(validator: PerceptionValidator) -> None:
    outcome = validator.run(build_tables([]), names=["keyframes"])[0]
    assert not outcome.success
    assert [e.description for e in outcome.failed] == ["at least one sample"]
    assert outcome.failed[0].observed_value == 0


def test_unknown_suite_is_an_error(validator: PerceptionValidator) -> None:
    with pytest.raises(KeyError, match="unknown suite"):
        validator.run(build_tables(good_batch()), names=["nope"])


def test_frame_zero_observation_is_checked_too(validator: PerceptionValidator) -> None:
    frames = _with_frame(make_frames(5), 0, observation=GOOD_OBSERVATION, raw="As an AI, I cannot see the image.")
    outcomes = _validate(validator, [*good_batch(), make_sample("q_ai", frames=frames)])
    assert _failing(outcomes) == {("descriptions", "no refusal text in the VLM answer")}
