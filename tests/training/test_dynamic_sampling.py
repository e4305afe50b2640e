"""Dynamic sampling: constant groups are redrawn from fresh prompts; the batch merge keeps TRL's layout.

The merge is tested on hand-made batches; the redraw in real TRL runs of the tiny model, with a reward that is
constant on half the prompts (solution A or B) and varies with the completion on the others.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError

from embodied_r.training.config import GrpoTrainingConfig
from embodied_r.training.dynamic_sampling import replace_groups, replacement_order
from embodied_r.training.grpo import train_grpo


def batch(prompt: list[list[int]], completion: list[list[int]], advantages: list[float]) -> dict[str, torch.Tensor]:
    """A TRL-shaped batch; 0 is padding (prompts left-padded, completions right-padded)."""
    prompt_ids, completion_ids = torch.tensor(prompt), torch.tensor(completion)
    completion_mask = (completion_ids != 0).int()
    return {
        "prompt_ids": prompt_ids,
        "prompt_mask": (prompt_ids != 0).int(),
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "advantages": torch.tensor(advantages),
        "ref_per_token_logps": -completion_ids.float() * completion_mask,
        "num_items_in_batch": completion_mask.sum(),
    }


def test_replaced_groups_take_the_new_rows_and_the_others_keep_theirs() -> None:
    old = batch(
        prompt=[[5, 6], [5, 6], [0, 7], [0, 7], [8, 9], [8, 9]],
        completion=[[1, 0], [1, 0], [2, 3], [4, 0], [1, 1], [1, 1]],
        advantages=[0.0, 0.0, 0.7, -0.7, 0.0, 0.0],
    )
    new = batch(
        prompt=[[11, 12, 13], [11, 12, 13], [0, 14, 15], [0, 14, 15]],
        completion=[[3, 3, 3], [3, 0, 0], [2, 0, 0], [2, 2, 0]],
        advantages=[0.5, -0.5, -0.4, 0.4],
    )
    merged = replace_groups(old, new, [0, 2], group_size=2, pad_token_id=0)
    assert merged["prompt_ids"].tolist() == [[11, 12, 13], [11, 12, 13], [0, 0, 7], [0, 0, 7], [0, 14, 15], [0, 14, 15]]
    assert merged["prompt_mask"].tolist() == [[1, 1, 1], [1, 1, 1], [0, 0, 1], [0, 0, 1], [0, 1, 1], [0, 1, 1]]
    assert merged["completion_ids"].tolist() == [[3, 3, 3], [3, 0, 0], [2, 3, 0], [4, 0, 0], [2, 0, 0], [2, 2, 0]]
    assert merged["completion_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0]]
    assert merged["advantages"].tolist() == pytest.approx([0.5, -0.5, 0.7, -0.7, -0.4, 0.4])
    assert merged["ref_per_token_logps"][2].tolist() == [-2.0, -3.0, 0.0]  # the kept group, widened with zeros
    assert merged["num_items_in_batch"].item() == 3 + 1 + 2 + 1 + 1 + 2
    assert old["advantages"].tolist() == pytest.approx([0.0, 0.0, 0.7, -0.7, 0.0, 0.0])  # inputs untouched


def test_merge_refuses_what_it_cannot_merge() -> None:
    old = batch([[5], [5]], [[1], [1]], [0.0, 0.0])
    with pytest.raises(ValueError, match="pixel_values"):
        replace_groups({**old, "pixel_values": torch.zeros(2, 3)}, old, [0], 2, pad_token_id=0)
    with pytest.raises(ValueError, match="4 replacement rows for 1 groups of 2"):
        replace_groups(old, batch([[5]] * 4, [[1]] * 4, [0.0] * 4), [0], 2, pad_token_id=0)


def test_replacement_order_is_seeded_per_step() -> None:
    assert replacement_order(50, seed=1, step=7) == replacement_order(50, seed=1, step=7)
    assert replacement_order(50, seed=1, step=7) != replacement_order(50, seed=1, step=8)
    assert sorted(replacement_order(50, seed=1, step=7)) == list(range(50))


def test_rounds_cannot_be_negative() -> None:
    with pytest.raises(ValidationError):
        GrpoTrainingConfig(dynamic_sampling=-1)
    assert GrpoTrainingConfig().dynamic_sampling == 0  # the paper's setting: off


# ---------------------------------------------------------------------------------------------------------------------
# Real TRL runs
# ---------------------------------------------------------------------------------------------------------------------


class HalfConstant:
    """1.0 on prompts whose solution is A or B (no signal); elsewhere the completion's share of vowels.

    Records each scoring call: the question ids it saw and the rewards it gave.
    """

    __name__ = "format"

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[float]]] = []

    def __call__(self, completions: list[Any], solution: list[str], question_id: list[str], **kw: Any) -> list[float]:
        rewards = []
        for completion, answer in zip(completions, solution, strict=True):
            text = completion if isinstance(completion, str) else completion[0]["content"]
            rewards.append(1.0 if answer in "AB" else sum(ch in "aeiou" for ch in text) / max(len(text), 1))
        self.calls.append((list(question_id), rewards))
        return rewards


class FormatOnly:
    def weights_at(self, epoch: float | None = None, step_fraction: float | None = None) -> tuple[float, float, float]:
        return (1.0, 0.0, 0.0)


def run(tiny_lm: Path, rows: Path, out: Path, rounds: int, steps: int) -> tuple[HalfConstant, dict[int, dict], Any]:
    reward = HalfConstant()
    cfg = GrpoTrainingConfig(
        num_generations=4, prompts_per_step=1, max_completion_length=8, precision="fp32", max_steps=steps,
        save_steps=100, beta=0.0, learning_rate=1e-3, think_prefill=False, log_completions_n=0,
        dynamic_sampling=rounds,
    )  # fmt: skip
    outcome = train_grpo(tiny_lm, rows, out, cfg, [reward], ["format"], FormatOnly(), resume=False)
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return reward, {entry["step"]: entry for entry in history if "loss" in entry}, outcome


@pytest.mark.slow
def test_constant_groups_are_redrawn_until_one_has_a_signal(tiny_lm: Path, tiny_rows: Path, tmp_path: Path) -> None:
    rounds, steps = 3, 6
    reward, logs, outcome = run(tiny_lm, tiny_rows, tmp_path / "run", rounds, steps)
    draws = [int(logs[step]["dynamic_sampling/draws"]) for step in range(1, steps + 1)]
    assert sum(draws) == len(reward.calls)  # every draw is one scoring call, and every call is counted
    assert any(d > 1 for d in draws), "no step redrew a group: the test shows nothing"
    calls = iter(reward.calls)
    for step, n in enumerate(draws, start=1):
        step_calls = [next(calls) for _ in range(n)]
        flat = [len(set(rewards)) == 1 for _, rewards in step_calls]
        assert 1 <= n <= 1 + rounds
        assert all(flat[:-1]), f"step {step} redrew after a group with a signal: {step_calls}"
        assert n == 1 + rounds or not flat[-1]  # stopped at a signal, or the rounds ran out
        # What reached the loss: the last draw's group, with or without a signal.
        assert logs[step]["dynamic_sampling/zero_std_trained"] == float(flat[-1])
        # Each draw is a fresh prompt of the step (a group of 4 rows of one question).
        questions = [ids[0] for ids, _ in step_calls]
        assert all(len(set(ids)) == 1 for ids, _ in step_calls) and len(set(questions)) == n
        # frac_reward_zero_std: the share of all drawn groups that were constant.
        assert logs[step]["frac_reward_zero_std"] == pytest.approx(sum(flat) / n)
    # The run's summary (the asset's metadata): draws per step and the share of trained groups without a signal.
    assert outcome.metrics["run/draws_per_step"] == pytest.approx(sum(draws) / steps)
    trained = [logs[step]["dynamic_sampling/zero_std_trained"] for step in range(1, steps + 1)]
    assert outcome.metrics["run/zero_std_trained"] == pytest.approx(sum(trained) / steps)


@pytest.mark.slow
def test_without_rounds_every_step_scores_its_batch_once(tiny_lm: Path, tiny_rows: Path, tmp_path: Path) -> None:
    reward, logs, outcome = run(tiny_lm, tiny_rows, tmp_path / "run", rounds=0, steps=3)
    assert len(reward.calls) == 3
    assert not any("dynamic_sampling/draws" in entry for entry in logs.values())
    flat = [len(set(rewards)) == 1 for _, rewards in reward.calls]
    assert outcome.metrics["run/zero_std_trained"] == pytest.approx(sum(flat) / 3)
    assert "run/draws_per_step" not in outcome.metrics
