"""The consistency reward over a scripted judge: who is judged, what the judge sees, failures as None."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from embodied_r.rewards.config import RewardSchedule
from embodied_r.rewards.consistency import make_consistency_reward
from embodied_r.rewards.judges import JudgeItem, judge_messages
from tests.rewards.helpers import ABCD, NO_THINK, QUESTION, RIGHT, WRONG, FakeTrainerState, ScriptedJudge


@pytest.mark.parametrize(
    ("completion", "replies", "expected", "calls", "failures", "unparsable"),
    [
        pytest.param(RIGHT, ["B"], 1.0, 1, 0, 0, id="judge-agrees"),
        pytest.param(RIGHT, [" (B).\n"], 1.0, 1, 0, 0, id="judge-agrees-decorated"),
        pytest.param(RIGHT, ["C"], 0.0, 1, 0, 0, id="judge-disagrees"),
        pytest.param(WRONG, [], 0.0, 0, 0, 0, id="wrong-answer-not-judged"),
        pytest.param(NO_THINK, [], 0.0, 0, 0, 0, id="no-think-not-judged"),
        pytest.param("<think>  </think><answer>B</answer>", [], 0.0, 0, 0, 0, id="blank-think-not-judged"),
        pytest.param(RIGHT, [TimeoutError("judge timed out")], None, 1, 1, 0, id="judge-failure-is-none"),
        pytest.param(RIGHT, ["I cannot tell."], None, 1, 0, 1, id="judge-unparsable-is-none"),
        pytest.param(RIGHT, ["E"], None, 1, 0, 1, id="judge-letter-not-among-choices"),
    ],
)
def test_consistency_table(
    completion: str,
    replies: list[Any],
    expected: float | None,
    calls: int,
    failures: int,
    unparsable: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    judge = ScriptedJudge(replies)
    reward = make_consistency_reward(judge)
    with caplog.at_level(logging.WARNING, logger="embodied_r.rewards.judges"):
        assert reward([completion], solution=["B"], question=[QUESTION], choices=[ABCD]) == [expected]
    assert judge.stats.as_dict() == {"calls": calls, "failures": failures, "unparsable": unparsable}
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert bool(warned) == bool(failures or unparsable)


def test_judge_sees_only_question_and_think() -> None:
    judge = ScriptedJudge(["B"])
    make_consistency_reward(judge)(
        [RIGHT],
        solution=["B"],
        question=[QUESTION],
        choices=[ABCD],
        prompts=[[{"role": "user", "content": "Frame 0: Observe: SECRET VIDEO TEXT"}]],
    )
    (request,) = judge.requests
    sent = "\n".join(m["content"] for m in request)
    assert QUESTION in sent
    assert "The chair stayed on my right after I rotated." in sent
    assert "SECRET VIDEO TEXT" not in sent
    assert "<answer>" not in sent  # the policy's answer is not shown
    assert request == judge_messages(JudgeItem(QUESTION, "The chair stayed on my right after I rotated.", tuple(ABCD)))


def test_consistency_batches_a_group_and_reports_metrics() -> None:
    judge = ScriptedJudge(["B", RuntimeError("HTTP 500"), "B"])
    metrics: dict[str, float] = {}
    extra: dict[str, list[str]] = {}
    completions = [RIGHT, WRONG, RIGHT, NO_THINK, RIGHT, "<think>x</think><answer>7</answer>"]
    rewards = make_consistency_reward(judge)(
        completions,
        solution=["B"] * 5 + ["7"],
        question=[QUESTION] * 6,
        choices=[ABCD] * 5 + [[]],
        log_metric=metrics.__setitem__,
        log_extra=extra.__setitem__,
    )
    assert rewards == [1.0, 0.0, None, 0.0, 1.0, None]  # failed request → None; numeric row → None
    assert len(judge.requests) == 3  # one batch, only the correct answers with a think
    assert metrics == {
        "judge/calls": 3.0,
        "judge/failures": 1.0,
        "judge/unparsable": 0.0,
        "judge/failure_rate": pytest.approx(1 / 3),
    }
    assert extra == {"judge_letter": ["B", "", "", "", "B", ""]}


def test_consistency_official_scan_mode_uses_the_scan_for_correctness() -> None:
    text = "<think>It is B. Surely.</think><answer>C</answer>"
    judge = ScriptedJudge(["B"])
    reward = make_consistency_reward(judge, mode="official_scan")
    assert reward([text], solution=["B"], question=[QUESTION], choices=[ABCD]) == [1.0]
    assert make_consistency_reward(ScriptedJudge([]))([text], solution=["B"], question=[QUESTION], choices=[ABCD]) == [
        0.0
    ]


def test_consistency_needs_the_question_column() -> None:
    with pytest.raises(ValueError, match="question"):
        make_consistency_reward(ScriptedJudge(["B"]))([RIGHT], solution=["B"], choices=[ABCD])


def test_consistency_skips_the_judge_while_unweighted() -> None:
    judge = ScriptedJudge(["B"])
    reward = make_consistency_reward(judge, schedule=RewardSchedule.paper())
    kwargs = {"solution": ["B"], "question": [QUESTION], "choices": [ABCD]}
    assert reward([RIGHT], trainer_state=FakeTrainerState(10, 120, 1.0), **kwargs) == [None]
    assert judge.stats.calls == 0
    assert reward([RIGHT], trainer_state=FakeTrainerState(60, 120, 6.0), **kwargs) == [1.0]
    assert judge.stats.calls == 1
    eager = make_consistency_reward(ScriptedJudge(["B"]), schedule=RewardSchedule.paper(), skip_when_unweighted=False)
    assert eager([RIGHT], trainer_state=FakeTrainerState(10, 120, 1.0), **kwargs) == [1.0]


def test_consistency_skip_agrees_with_the_applied_weights_before_training_starts() -> None:
    """max_steps 0 (no plan yet) is the first stage for the trainer's callback, so the judge is not asked either."""
    from embodied_r.rewards.schedule import training_progress, weights_for

    state = FakeTrainerState(0, 0, 0.0)
    assert weights_for(RewardSchedule.paper(), ["consistency"], *training_progress(state)) == [0.0]
    judge = ScriptedJudge(["B"])
    reward = make_consistency_reward(judge, schedule=RewardSchedule.paper())
    assert reward([RIGHT], trainer_state=state, solution=["B"], question=[QUESTION], choices=[ABCD]) == [None]
    assert judge.stats.calls == 0
