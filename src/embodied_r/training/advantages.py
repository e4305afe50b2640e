"""Zero-variance groups get a zero advantage: TRL's float32 group mean can miss equal rewards by an ulp.

GRPO's advantage of a completion is its reward minus the mean reward of its group (divided by the group's std).
When every completion of a group earns the same reward the advantage must be 0: nothing in the group is better
than anything else. TRL 1.16 computes the weighted reward sum and the group mean in float32; with weights that are
not exact binary fractions (the paper's 0.3 / 0.7) the mean of eight equal rewards differs from them by an ulp, the
std is ≈ 3e-8 (not ``isclose`` to 0) and every completion gets the same ≈ 3e-4 advantage:

>>> import torch
>>> rewards = (torch.tensor([[1.0, 0.0]] * 8) * torch.tensor([0.3, 0.7])).sum(dim=1)
>>> bool((rewards - rewards.mean()).abs().max() > 0)
True

Its gradient is negligible; TRL's logged ``frac_reward_zero_std`` is not — it undercounts exactly the groups that
tell whether GRPO still has a signal. :func:`zero_constant_groups` finds such groups after the fact: with equal
rewards every completion of the group has the same advantage bit for bit (same reward, same mean, same std), and
with unequal rewards the advantages cannot all be equal (some rewards lie above the group mean and some below).
"""

from __future__ import annotations

import torch


def zero_constant_groups(advantages: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages with every constant group set to 0, per-row mask of the rows in such groups).

    ``advantages`` holds consecutive groups of ``group_size`` (TRL's layout). A group is constant when its nonzero
    advantages are all equal: TRL zeroes the advantage of unscorable completions (every reward ``None``), which
    leaves the scorable rest of a group equal to each other.

    >>> adv = torch.tensor([3e-4, 3e-4, 3e-4, 0.0, 1.5, -1.5, 0.0, 0.0])
    >>> fixed, constant = zero_constant_groups(adv, 4)
    >>> fixed.tolist()
    [0.0, 0.0, 0.0, 0.0, 1.5, -1.5, 0.0, 0.0]
    >>> constant.tolist()
    [True, True, True, True, False, False, False, False]
    """
    if advantages.dim() != 1 or group_size < 1 or advantages.numel() % group_size:
        raise ValueError(f"advantages of shape {tuple(advantages.shape)} do not split into groups of {group_size}")
    groups = advantages.view(-1, group_size)
    nonzero = groups != 0
    # Each group's reference value: its first nonzero advantage (0 when there is none).
    first = torch.where(nonzero.any(dim=1), groups.gather(1, nonzero.int().argmax(dim=1, keepdim=True)).squeeze(1), 0.0)
    constant = ((groups == first.unsqueeze(1)) | ~nonzero).all(dim=1)
    fixed = groups.masked_fill(constant.unsqueeze(1), 0.0).view_as(advantages)
    return fixed, constant.repeat_interleave(group_size)
