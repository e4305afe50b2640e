"""Per-record checks of one VLM answer: the same verdict as the GX ``descriptions`` suite, frame by frame."""

from __future__ import annotations

from embodied_r.perception.records import FrameDescription
from embodied_r.validation import PerceptionValidator, ValidationConfig, build_tables
from embodied_r.validation.answer_checks import answer_problem, invalid_answers_note
from tests.validation.validation_samples import good_batch, make_frames, make_sample

REFUSAL = "I'm sorry, but I cannot see the images you describe."


def _bad_frames() -> dict[str, FrameDescription]:
    ok = make_frames(2)[1]
    return {
        "blank": ok.model_copy(update={"observation": "   ", "raw": "1. move forward\n2. \n3."}),
        "short": ok.model_copy(update={"observation": "A tree.", "raw": "1. move forward\n2. A tree."}),
        "long": ok.model_copy(update={"observation": "x" * 5000, "raw": "x" * 5000}),
        "refusal": ok.model_copy(update={"observation": REFUSAL, "raw": REFUSAL}),
    }


def test_answer_problem_names_what_fails() -> None:
    cfg = ValidationConfig()
    problems = {name: answer_problem(frame, cfg) for name, frame in _bad_frames().items()}
    assert problems["blank"] == "empty description"
    assert "fewer than validation.min_description_chars=20" in problems["short"]
    assert "more than validation.max_description_chars=4000" in problems["long"]
    assert "refusal text" in problems["refusal"] and "sorry" in problems["refusal"]
    assert all(answer_problem(frame, cfg) is None for sample in good_batch() for frame in sample.frames)


def test_answer_problem_agrees_with_the_descriptions_suite(validator: PerceptionValidator) -> None:
    cfg = validator.cfg
    samples = good_batch(1)
    for name, frame in _bad_frames().items():
        frames = make_frames(4)
        frames[2] = frame.model_copy(update={"index": frames[2].index})
        samples.append(make_sample(f"q_bad_{name}", frames=frames))
    flagged = {
        sample.question_id
        for sample in samples
        if any(answer_problem(frame, cfg) is not None for frame in sample.frames)
    }
    outcome = validator.run_one("descriptions", build_tables(samples, cfg.refusal_patterns))
    failing = {example.key for expectation in outcome.failed for example in expectation.examples}
    assert not outcome.success and failing == flagged == {f"q_bad_{name}" for name in _bad_frames()}


def test_invalid_answers_note_says_which_are_reasked_and_which_stay_failing() -> None:
    entry = {"video_id": "v0", "k": 2, "frame_indices": [4, 8], "question_ids": ["q0"], "problem": "refusal text",
             "max_attempts": 3}  # fmt: skip
    note = invalid_answers_note(
        [entry | {"attempt": 1, "reasked_next_run": True}, entry | {"k": 3, "attempt": 3, "reasked_next_run": False}]
    )
    assert note is not None
    assert "2 VLM answers failed the per-record checks this run (1 of them were already re-asked answers)" in note
    assert "1 will be re-asked on the next run instead of served from the cache" in note
    assert "1 stay failing after 3 attempts and are not asked again" in note and "v0 k=3" in note
    assert invalid_answers_note([]) is None
