"""The logical-consistency reward (reference §5): does the reasoning alone lead a frozen judge to the answer?"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from embodied_r.answers import AccuracyMode, extract_answer, extract_think
from embodied_r.rewards.completions import choices_column, column_values, completion_text, solution_column
from embodied_r.rewards.config import RewardSchedule
from embodied_r.rewards.judges import ConsistencyJudge, JudgeItem, JudgeStats
from embodied_r.rewards.schedule import training_progress, weights_for

__all__ = ["ConsistencyReward", "make_consistency_reward"]


class ConsistencyReward:
    """Logical consistency: does the reasoning alone lead a frozen judge to the policy's (correct) answer?

    Per completion: ``0.0`` unless the answer is correct (read in ``mode``, as the accuracy reward does);
    ``0.0`` if there is no non-empty ``<think>`` block; otherwise the judge gets the ``question`` column and
    the ``<think>`` text and ``1.0`` iff its letter equals the policy's. ``None`` (TRL: not applicable) for a
    failed or unparsable judge request, for numeric rows, and — with a ``schedule`` and
    ``skip_when_unweighted`` — while the schedule gives consistency weight 0 (the judge is not called then).

    Each call reports this batch's judge counts through TRL's ``log_metric`` (``judge/calls``,
    ``judge/failures``, ``judge/unparsable``, ``judge/failure_rate``) and the judge's letter per completion
    through ``log_extra`` (column ``judge_letter``); cumulative counts stay in ``judge.stats``.
    """

    def __init__(
        self,
        judge: ConsistencyJudge,
        *,
        mode: AccuracyMode = "answer_tag",
        schedule: RewardSchedule | None = None,
        skip_when_unweighted: bool = True,
        name: str = "consistency",
    ) -> None:
        self.judge = judge
        self.mode = mode
        self.schedule = schedule
        self.skip_when_unweighted = skip_when_unweighted
        self.__name__ = name

    def _unweighted_now(self, trainer_state: Any) -> bool:
        if self.schedule is None or not self.skip_when_unweighted or trainer_state is None:
            return False
        # The same progress and weights the trainer's RewardScheduleCallback applies (embodied_r.rewards.schedule).
        epoch, fraction = training_progress(trainer_state)
        try:
            return weights_for(self.schedule, ["consistency"], epoch, fraction)[0] == 0
        except ValueError:  # a state the schedule cannot place (negative or non-finite progress): judge to be safe
            return False

    def __call__(self, completions: Sequence[Any], solution: Sequence[Any], **kwargs: Any) -> list[float | None]:
        n = len(completions)
        if self._unweighted_now(kwargs.get("trainer_state")):
            return [None] * n
        solutions = solution_column(solution, n)
        choices = choices_column(kwargs, solutions, n)
        questions = column_values(kwargs, "question", n)
        if questions is None:
            raise ValueError("the consistency reward needs the 'question' column (question with its choices)")
        rewards: list[float | None] = [None] * n
        pending: list[tuple[int, JudgeItem, str]] = []
        for i, completion in enumerate(completions):
            if not choices[i]:
                continue  # numeric row: no letter to be consistent with
            text = completion_text(completion)
            letter = extract_answer(text, choices[i], self.mode, question=str(questions[i]))
            if letter is None or letter != solutions[i].upper():
                rewards[i] = 0.0
                continue
            think = extract_think(text)
            if think is None:
                rewards[i] = 0.0
                continue
            pending.append((i, JudgeItem(str(questions[i]), think, choices[i]), letter))
        before = self.judge.stats.copy()
        verdicts = self.judge.judge_batch([item for _, item, _ in pending])
        judge_letters: list[str | None] = [None] * n
        for (i, _, letter), verdict in zip(pending, verdicts, strict=True):
            judge_letters[i] = verdict
            rewards[i] = None if verdict is None else float(verdict == letter)
        self._report(kwargs, self.judge.stats - before, judge_letters)
        return rewards

    def _report(self, kwargs: dict[str, Any], delta: JudgeStats, judge_letters: list[str | None]) -> None:
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            for key, value in delta.as_dict().items():
                log_metric(f"judge/{key}", float(value))
            if delta.calls:
                log_metric("judge/failure_rate", (delta.failures + delta.unparsable) / delta.calls)
        log_extra = kwargs.get("log_extra")
        if callable(log_extra):
            log_extra("judge_letter", [letter or "" for letter in judge_letters])

    def __repr__(self) -> str:
        return f"ConsistencyReward(judge={self.judge!r}, mode={self.mode!r})"


def make_consistency_reward(
    judge: ConsistencyJudge,
    *,
    mode: AccuracyMode = "answer_tag",
    schedule: RewardSchedule | None = None,
    skip_when_unweighted: bool = True,
) -> ConsistencyReward:
    """The consistency reward asking ``judge`` (see :class:`ConsistencyReward`)."""
    return ConsistencyReward(judge, mode=mode, schedule=schedule, skip_when_unweighted=skip_when_unweighted)
