"""The paper's GRPO trainer: TRL's ``GRPOTrainer`` with the one correction its arithmetic needs.

GRPO (reference §5) samples G completions per prompt, scores them, and weighs each completion's log-probability by
its advantage: its reward minus its group's mean, over the group's standard deviation. TRL's ``GRPOTrainer`` is
that algorithm; :class:`PaperGRPOTrainer` runs it unchanged but for the advantages of groups whose rewards are all
equal, which must be exactly 0 (no completion of the group is better than another) and which TRL 1.16 gets wrong
by an ulp under the paper's weights (:mod:`embodied_r.training.advantages`).

The CPU speed-ups and the one sampling deviation are separate subclasses of this trainer, each opt-in by config
and composed by :func:`embodied_r.training.grpo.grpo_trainer_class`:

* :class:`~embodied_r.training.shared_prompt.SharedPromptGRPOTrainer` (``grpo.shared_prompt``) — each prompt
  computed once for its G completions; same loss;
* :class:`~embodied_r.training.flat_batches.SkipFlatBatchesGRPOTrainer` (``grpo.skip_flat_batches``) — micro-batches
  whose advantages are all 0 skip their passes; same weights;
* :class:`~embodied_r.training.dynamic_sampling.DynamicSamplingGRPOTrainer` (``grpo.dynamic_sampling``) — DAPO's
  redraw of groups without a signal; not in the paper.
"""

from __future__ import annotations

from typing import Any

from trl import GRPOTrainer

from embodied_r.training.advantages import zero_constant_groups


class PaperGRPOTrainer(GRPOTrainer):
    """TRL's ``GRPOTrainer`` whose zero-variance groups get an advantage of exactly 0, and are counted.

    A correctness fix, not a trick: GRPO's advantage of a group whose rewards are all equal is 0, but TRL 1.16 sums
    the weighted rewards and takes the group mean in float32, and with weights that are not binary fractions (the
    paper's 0.3 / 0.7) the mean of equal rewards misses them by an ulp — every completion of the group then gets the
    same ≈ 3e-4 advantage, and TRL's ``frac_reward_zero_std`` (from ``isclose(std, 0)``) does not count the group.
    Here such groups are found from the advantages themselves (:func:`zero_constant_groups`), set to 0, and
    ``frac_reward_zero_std`` is recounted. With ``normalize_then_sum`` (not used here) TRL's advantages are
    batch-normalised and left as they are.
    """

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        if self.multi_objective_aggregation != "sum_then_normalize":
            return output
        mode = "train" if self.model.training else "eval"
        group = self.num_generations if mode == "train" else self.num_generations_eval
        local = output["advantages"]
        # Groups may straddle processes: fix the whole batch, in process order as TRL gathers rewards, then slice.
        everything = self.accelerator.gather(local)
        fixed, constant = zero_constant_groups(everything, group)
        start = self.accelerator.process_index * local.size(0)
        output["advantages"] = fixed[start : start + local.size(0)]
        zero_std = self._metrics[mode]["frac_reward_zero_std"]
        if zero_std:  # TRL appended this batch's (under)count last
            zero_std[-1] = constant.float().mean().item()
        return output


def single_process(trainer: GRPOTrainer) -> bool:
    """Whether ``trainer`` runs alone: one process, no DeepSpeed or FSDP wrapping the model's forward."""
    return trainer.accelerator.num_processes == 1 and not trainer.is_deepspeed_enabled and not trainer.is_fsdp_enabled


__all__ = ["PaperGRPOTrainer", "single_process"]
