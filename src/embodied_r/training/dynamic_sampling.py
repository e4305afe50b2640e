"""Dynamic sampling (DAPO, arXiv 2503.14476 §3.2): groups without a signal are redrawn before the step trains.

A GRPO group whose completions all earn the same reward has advantage 0 everywhere: it costs a forward and a
backward and teaches nothing (with β = 0 it contributes no gradient at all). On a small policy that has collapsed
onto one answer per question this is most groups — measured on ``cpu-long``, 80-90 % of the groups after the first
quarter of the run. DAPO's remedy is to draw further prompts until the batch is made of groups whose rewards differ.
Here, after a generation batch is scored, every constant group is replaced by a fresh prompt's group, generated and
scored the same way, up to ``rounds`` times; whatever is still constant then trains as it is (advantage 0).

Not in the Embodied-R paper (``grpo.dynamic_sampling: 0``, the paper's setting, turns it off). Each extra round
costs one generation and one scoring of the redrawn groups only — on a CPU a fraction of the forward and backward it
saves from being wasted — and the share of drawn groups that were constant stays visible in
``frac_reward_zero_std`` (every draw is logged), next to ``dynamic_sampling/zero_std_trained`` (the groups that
reached the loss) and ``dynamic_sampling/draws`` (scoring rounds per generation batch).

The replacement prompts are a seeded permutation of the training rows per step (a resumed run redraws the same).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from trl.trainer.utils import pad

#: Batch fields padded on the left (prompts) and on the right (completions) by TRL.
LEFT_PADDED = {"prompt_ids", "prompt_mask"}
RIGHT_PADDED = {"completion_ids", "completion_mask", "old_per_token_logps", "ref_per_token_logps",
                "sampling_per_token_logps"}  # fmt: skip
PER_ROW = {"advantages", "letter_positions", "letter_candidates"}  # the last two: grpo.letter_entropy_coef
MERGEABLE = LEFT_PADDED | RIGHT_PADDED | PER_ROW | {"num_items_in_batch"}


def flat_groups(advantages: torch.Tensor, group_size: int) -> list[int]:
    """Indices of the groups without a signal: every advantage 0 (after ``zero_constant_groups``: equal rewards).

    >>> flat_groups(torch.tensor([0.0, 0.0, 0.5, -0.5, 0.0, 0.0]), 2)
    [0, 2]
    """
    return (advantages.view(-1, group_size) == 0).all(dim=1).nonzero().flatten().tolist()


def replace_groups(
    batch: dict[str, torch.Tensor],
    replacement: dict[str, torch.Tensor],
    groups: Sequence[int],
    group_size: int,
    pad_token_id: int,
) -> dict[str, torch.Tensor]:
    """``batch`` with its groups ``groups`` (indices) replaced, in order, by the groups of ``replacement``.

    Both are outputs of TRL's ``_generate_and_score_completions`` (rows in consecutive groups of ``group_size``);
    prompts stay left-padded and completions right-padded, to the wider of the two; ``num_items_in_batch`` (the
    completion tokens the loss is normalised by) is recounted.

    >>> batch = {"prompt_ids": torch.tensor([[5], [5], [6], [6]]), "prompt_mask": torch.ones(4, 1, dtype=torch.long),
    ...          "completion_ids": torch.tensor([[1], [1], [2], [3]]), "completion_mask": torch.ones(4, 1),
    ...          "advantages": torch.tensor([0.0, 0.0, 1.0, -1.0]), "num_items_in_batch": torch.tensor(4.0)}
    >>> new = {"prompt_ids": torch.tensor([[7, 8], [7, 8]]), "prompt_mask": torch.ones(2, 2, dtype=torch.long),
    ...        "completion_ids": torch.tensor([[4, 9], [4, 0]]), "completion_mask": torch.tensor([[1.0, 1], [1, 0]]),
    ...        "advantages": torch.tensor([1.0, -1.0]), "num_items_in_batch": torch.tensor(3.0)}
    >>> out = replace_groups(batch, new, [0], 2, pad_token_id=0)
    >>> out["prompt_ids"].tolist(), out["advantages"].tolist(), out["num_items_in_batch"].item()
    ([[7, 8], [7, 8], [0, 6], [0, 6]], [1.0, -1.0, 1.0, -1.0], 5.0)
    """
    unknown = (set(batch) | set(replacement)) - MERGEABLE
    if unknown:
        raise ValueError(
            f"dynamic sampling cannot merge the batch fields {sorted(unknown)} (text-only GRPO batches); "
            "set grpo.dynamic_sampling: 0"
        )
    if replacement["advantages"].numel() != len(groups) * group_size:
        raise ValueError(
            f"{replacement['advantages'].numel()} replacement rows for {len(groups)} groups of {group_size}"
        )
    rows = torch.cat([torch.arange(g * group_size, (g + 1) * group_size) for g in groups]) if groups else None
    merged: dict[str, torch.Tensor] = {}
    for key, old in batch.items():
        if key == "num_items_in_batch":
            continue
        new = replacement[key]
        if key in PER_ROW:
            old = old.clone()
        else:  # both padded to the wider, by TRL's own helper (a new tensor)
            side = "left" if key in LEFT_PADDED else "right"
            value = pad_token_id if key in ("prompt_ids", "completion_ids") else 0
            both = pad([*old, *new.to(old.dtype)], padding_value=value, padding_side=side)
            old, new = both[: old.size(0)], both[old.size(0) :]
        if rows is not None:
            old[rows.to(old.device)] = new.to(old.dtype)
        merged[key] = old
    merged["num_items_in_batch"] = merged["completion_mask"].sum().to(batch["num_items_in_batch"].dtype)
    return merged


def replacement_order(num_rows: int, seed: int, step: int) -> list[int]:
    """The training rows in the order step ``step`` draws its replacement prompts (seeded: resumes redraw alike).

    >>> replacement_order(5, seed=0, step=3) == replacement_order(5, seed=0, step=3)
    True
    >>> sorted(replacement_order(5, seed=0, step=3))
    [0, 1, 2, 3, 4]
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randperm(num_rows, generator=generator).tolist()


__all__ = ["flat_groups", "replace_groups", "replacement_order"]
