"""Zero-variance groups: exactly zero advantages, counted (TRL's float32 mean misses equal rewards by an ulp)."""

from __future__ import annotations

import pytest
import torch

from embodied_r.training.advantages import zero_constant_groups


def trl_advantages(rewards: torch.Tensor, group: int) -> torch.Tensor:
    """TRL 1.16's ``sum_then_normalize`` advantages with group scaling (grpo_trainer.py)."""
    grouped = rewards.view(-1, group)
    mean = grouped.mean(dim=1).repeat_interleave(group)
    std = grouped.std(dim=1).repeat_interleave(group)
    return (rewards - mean) / (std + 1e-4)


def test_equal_rewards_under_the_papers_weights_give_trl_a_nonzero_advantage() -> None:
    """The bug this module exists for, measured on TRL's own arithmetic."""
    rewards = (torch.tensor([[1.0, 0.0]] * 8) * torch.tensor([0.3, 0.7])).nansum(dim=1)
    adv = trl_advantages(rewards, 8)
    assert (adv != 0).all() and torch.unique(adv).numel() == 1  # one spurious value, ≈ 3e-4
    fixed, constant = zero_constant_groups(adv, 8)
    assert (fixed == 0).all() and constant.all()


def test_groups_with_a_signal_are_left_bit_for_bit() -> None:
    rewards = torch.tensor([0.3, 1.0, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 1.0, 1.0, 0.3, 0.3])
    adv = trl_advantages(rewards, 4)
    fixed, constant = zero_constant_groups(adv, 4)
    assert constant.tolist() == [False] * 4 + [True] * 4 + [False] * 4
    assert torch.equal(fixed[:4], adv[:4]) and torch.equal(fixed[8:], adv[8:])
    assert (fixed[4:8] == 0).all()


def test_unscorable_rows_do_not_hide_a_constant_group() -> None:
    # TRL sets the advantage of completions no reward function could score to 0; the rest are equal.
    adv = torch.tensor([3e-4, 0.0, 3e-4, 3e-4, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0, -0.5, 0.0])
    fixed, constant = zero_constant_groups(adv, 4)
    assert constant.tolist() == [True] * 8 + [False] * 4
    assert fixed.tolist()[:8] == [0.0] * 8 and fixed.tolist()[8:] == [0.5, 0.0, -0.5, 0.0]


@pytest.mark.parametrize("shape, group", [((6,), 4), ((2, 4), 4), ((4,), 0)])
def test_a_batch_that_is_not_whole_groups_is_refused(shape, group) -> None:
    with pytest.raises(ValueError, match="groups of"):
        zero_constant_groups(torch.zeros(shape), group)
