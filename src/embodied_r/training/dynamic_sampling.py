"""Dynamic sampling (DAPO, arXiv 2503.14476 §3.2): groups without a signal are redrawn before the step trains.

A GRPO group whose completions all earn the same reward has advantage 0 everywhere: it costs a forward and a
backward and teaches nothing (with β = 0 it contributes no gradient at all). On a small policy that has collapsed
onto one answer per question this is most groups — measured on ``cpu-long``, 80-90 % of the groups after the first
quarter of the run. DAPO's remedy is to draw further prompts until the batch is made of groups whose rewards differ.
Here, after a generation batch is scored, every constant group is replaced by a fresh prompt's group, generated and
scored the same way, up to ``grpo.dynamic_sampling`` rounds; whatever is still constant then trains as it is
(advantage 0).

Not in the Embodied-R paper (``grpo.dynamic_sampling: 0``, the paper's setting, turns it off). Each extra round
costs one generation and one scoring of the redrawn groups only — on a CPU a fraction of the forward and backward it
saves from being wasted — and the share of drawn groups that were constant stays visible in
``frac_reward_zero_std`` (every draw is logged), next to ``dynamic_sampling/zero_std_trained`` (the groups that
reached the loss) and ``dynamic_sampling/draws`` (scoring rounds per generation batch).

The replacement prompts are a seeded permutation of the training rows per step (a resumed run redraws the same).
One process, text models, group-normalised advantages, one iteration per batch: other setups are refused.

Measured effect (``python -m experiments.learning -S grpo.dynamic_sampling=2 -S grpo.max_steps=160``, SmolLM2-135M,
the two tasks, text answers, the ``every_option`` cold start, 60 scenes; 2-core AVX2 CPU, fp32, 2026-12-06): GRPO went
24.6 % → 41.2 % (+16.6 points, paired 95 % interval [+9.3, +24.3]) where 250 steps without it gained +4.0
([−1.7, +10.0]); on a second world (``synthetic.seed: 1``) 23.1 % → 50.2 % (+27.1, [+20.3, +33.6]); about 2 draws a
step. It does not always pay: on the earlier four-task world it did no better than without (+5.1 against +7.4 at
250 steps), and with 6 rounds (2026-12-03) every prompt had collapsed by step 50. ``cpu-long`` and the demo set 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from trl.trainer.utils import pad

from embodied_r.training.trainer import PaperGRPOTrainer

#: Batch fields padded on the left (prompts) and on the right (completions) by TRL.
LEFT_PADDED = {"prompt_ids", "prompt_mask"}
RIGHT_PADDED = {"completion_ids", "completion_mask", "old_per_token_logps", "ref_per_token_logps",
                "sampling_per_token_logps"}  # fmt: skip
PER_ROW = {"advantages"}
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


class DynamicSamplingGRPOTrainer(PaperGRPOTrainer):
    """The paper's trainer with DAPO's dynamic sampling: constant groups redrawn up to ``dynamic_sampling_rounds``.

    ``dynamic_sampling_rounds`` (``grpo.dynamic_sampling``) is set on the class by
    :func:`embodied_r.training.grpo.grpo_trainer_class`.
    """

    dynamic_sampling_rounds: int = 1

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.dynamic_sampling_rounds < 1:
            raise ValueError(f"dynamic sampling needs >= 1 round, got {self.dynamic_sampling_rounds}")
        self._check_dynamic_sampling()

    def _check_dynamic_sampling(self) -> None:
        reasons = []
        if self.accelerator.num_processes > 1:
            reasons.append(f"{self.accelerator.num_processes} processes (each would redraw a different number of "
                           "groups; run one process or turn it off)")  # fmt: skip
        if getattr(self, "_is_vlm", False) or getattr(self, "environment_factories", None) is not None:
            reasons.append("a vision-language model or tool environments (only text batches are merged)")
        if self.multi_objective_aggregation != "sum_then_normalize" or self.scale_rewards == "batch":
            reasons.append("batch-normalised advantages (a redrawn group would change every other group's)")
        if self.num_iterations > 1:
            reasons.append("num_iterations > 1")
        if reasons:
            raise ValueError("grpo.dynamic_sampling is not supported with " + "; ".join(reasons)
                             + ": set grpo.dynamic_sampling: 0")  # fmt: skip

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """The paper's generation and scoring, then each training batch's constant groups replaced by fresh
        prompts' groups until none is left or the rounds are spent."""
        output = super()._generate_and_score_completions(inputs)
        if not self.model.training:
            return output
        group = self.num_generations
        order = replacement_order(len(self.train_dataset), self.args.seed, self.state.global_step)
        seen = {_prompt_key(row) for row in inputs}
        pool = (row for row in map(self.train_dataset.__getitem__, order) if _prompt_key(row) not in seen)
        draws = 1
        for _ in range(self.dynamic_sampling_rounds):
            pairs = list(zip(flat_groups(output["advantages"], group), pool, strict=False))  # no row drawn past need
            if not pairs:
                break
            todo, fresh = [g for g, _ in pairs], [row for _, row in pairs]
            seen.update(_prompt_key(row) for row in fresh)
            redrawn = super()._generate_and_score_completions([dict(row) for row in fresh for _ in range(group)])
            output = replace_groups(output, redrawn, todo, group, self._tokenizer.pad_token_id)
            draws += 1
        metrics = self._metrics["train"]
        metrics["dynamic_sampling/draws"].append(float(draws))
        # Measured on what reaches the loss.
        num_groups = output["advantages"].numel() // group
        metrics["dynamic_sampling/zero_std_trained"].append(len(flat_groups(output["advantages"], group)) / num_groups)
        return output


def _prompt_key(row: dict[str, Any]) -> str:
    """A training row's prompt as a hashable key (conversational prompts are lists of messages)."""
    prompt = row["prompt"]
    return prompt if isinstance(prompt, str) else repr(prompt)


__all__ = ["DynamicSamplingGRPOTrainer", "flat_groups", "replace_groups", "replacement_order"]
