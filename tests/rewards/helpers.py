"""Rows, completions and a scripted judge shared by the reward tests (and the evaluation tests)."""

from __future__ import annotations

from embodied_r.rewards.judges import ConsistencyJudge

ABCD = ["A", "B", "C", "D"]
QUESTION = "Question: Where is the red chair?\nA. left\nB. right\nC. ahead\nD. behind"

RIGHT = "<think>The chair stayed on my right after I rotated.</think><answer>B</answer>"
WRONG = "<think>The chair is ahead.</think><answer>C</answer>"
NO_THINK = "<answer>B</answer>"


class ScriptedJudge(ConsistencyJudge):
    """A fake judge: replies from a script (an exception in the script is a failed request); records requests."""

    name = "scripted"

    def __init__(self, replies: list[str | BaseException]) -> None:
        super().__init__()
        self.replies = list(replies)
        self.requests: list[list[dict[str, str]]] = []

    def _complete(self, conversations: list[list[dict[str, str]]]) -> list[str | BaseException]:
        self.requests.extend(conversations)
        out, self.replies = self.replies[: len(conversations)], self.replies[len(conversations) :]
        return out


class FakeTrainerState:
    """The three fields of transformers.TrainerState the rewards read."""

    def __init__(self, global_step: int, max_steps: int, epoch: float) -> None:
        self.global_step, self.max_steps, self.epoch = global_step, max_steps, epoch
