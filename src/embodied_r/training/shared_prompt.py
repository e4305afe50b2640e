"""GRPO with the prompt computed once per group: the same loss as TRL's, a fraction of the compute.

In GRPO every prompt is answered ``num_generations`` (G) times, and TRL treats each (prompt, completion) pair as
its own sequence: the prompt is pre-filled G times by ``generate`` and run forward (and backward) G times by the
policy, once more per reference or old-policy pass. Embodied-R's prompts are long (the video as text, hundreds of
tokens) and its completions short, so on a CPU almost all of a step goes into the same prompt, G times over.

:class:`SharedPromptGRPOTrainer` computes each distinct prompt once:

* **generation** — the distinct prompts are pre-filled once (all but their last token), the KV cache is repeated
  for each of their completions, and ``generate`` continues from it; sampling, stopping and the completion ids
  TRL post-processes are unchanged;
* **log-probabilities** (policy with gradients, reference, old policy) — one forward over the distinct prompts
  with a KV cache, the cache indexed out to the G completions of each (autograd carries every completion's
  gradient back into the shared prompt pass), one forward over the completion tokens on top of it; log-softmax
  and entropy of the temperature-scaled logits as TRL's fused LM head computes them.

The math is TRL's: with rotary position embeddings attention depends only on relative positions, so left padding
that shifts a whole row changes nothing, and :func:`shared_prompt_logps` matches TRL's per-token log-probabilities
and gradients to float precision (``tests/training/test_shared_prompt.py``). Cost per group goes from
``G × (P + C)`` tokens to ``P + G × C``.

Where the trick does not apply the trainer uses TRL's own code path: vision inputs, vLLM or continuous-batching
generation, several processes (DDP or DeepSpeed wrap the model's forward, which must then run once per backward),
logit soft-capping or scaling, or ``shared_prompt=False``.

One correction applies always: groups whose rewards are all equal get an advantage of exactly 0 and are counted in
``frac_reward_zero_std`` (TRL's float32 mean misses them by an ulp; :mod:`embodied_r.training.advantages`). With
``dynamic_sampling`` rounds such groups are redrawn from fresh prompts (:mod:`embodied_r.training.dynamic_sampling`).
In one process, a micro-batch made only of such groups, with no loss term free of the advantage (β = 0, no entropy
bonus), skips its forward and backward: they would compute a zero loss and zero gradients, which the optimizer
gets all the same.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from trl import GRPOTrainer
from trl.extras.profiling import profiling_context
from trl.models import unwrap_model_for_generation
from trl.trainer.utils import pad

from embodied_r.training.advantages import zero_constant_groups
from embodied_r.training.dynamic_sampling import flat_groups, replace_groups, replacement_order
from embodied_r.training.letter_entropy import LetterLocator, letter_entropies

log = logging.getLogger(__name__)

#: TRL loss types whose every term is a multiple of the advantage (0 advantages: 0 loss, 0 gradient).
_ADVANTAGE_LINEAR_LOSSES = frozenset({"grpo", "bnpo", "dr_grpo", "dapo", "luspo", "cispo", "sapo", "vespo"})

#: Config attributes of models whose logits are transformed after the LM head (not handled here).
_LOGIT_TRANSFORMS = (
    "final_logit_softcapping",
    "logit_scale",
    "output_multiplier",
    "lm_head_multiplier",
    "logits_scaling",
)


def group_rows(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(index of one row per distinct prompt, index of each row's distinct prompt).

    Rows are the same prompt when their ids and mask agree. ``first[inverse]`` maps every row to a row with its
    prompt.

    >>> ids = torch.tensor([[0, 5, 6], [1, 2, 3], [0, 5, 6]]); mask = torch.tensor([[0, 1, 1], [1, 1, 1], [0, 1, 1]])
    >>> first, inverse = group_rows(ids, mask)
    >>> first.tolist(), inverse.tolist()
    ([0, 1], [0, 1, 0])
    """
    keyed = torch.cat([prompt_ids * prompt_mask, prompt_mask], dim=1)  # pad ids do not matter where masked
    _, inverse = torch.unique(keyed, dim=0, return_inverse=True)
    # Keep the distinct prompts in order of first appearance (torch.unique sorts them).
    order: dict[int, int] = {}
    for row, group in enumerate(inverse.tolist()):
        order.setdefault(group, row)
    first_rows = sorted(order.values())
    renumber = {inverse[row].item(): k for k, row in enumerate(first_rows)}
    inverse = torch.tensor([renumber[g] for g in inverse.tolist()], device=prompt_ids.device)
    return torch.tensor(first_rows, device=prompt_ids.device), inverse


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip left padding (as ``generate`` computes them)."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def supports_shared_prompt(model: Any) -> bool:
    """Whether :func:`shared_prompt_logps` computes the same log-probabilities as a plain forward for ``model``."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    transformed = any(getattr(config, name, None) not in (None, 1.0) for name in _LOGIT_TRANSFORMS)
    return not transformed and getattr(model, "get_output_embeddings", lambda: None)() is not None


def shared_prompt_logps(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    logits_to_keep: int,
    *,
    temperature: float = 1.0,
    compute_entropy: bool = False,
    rows_per_chunk: int = 64,
    letter_slots: tuple[torch.Tensor, torch.Tensor] | None = None,
    on_letter_entropy: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probabilities (and entropies) of the last ``logits_to_keep`` tokens of each row.

    ``input_ids`` is TRL's ``cat([prompt_ids, completion_ids])`` (prompts left-padded, completions right-padded);
    each distinct prompt is run once and shared by its rows through the KV cache. Returns tensors of shape
    ``(rows, logits_to_keep)``; entries at completion padding are computed but meaningless (TRL masks them).
    With ``letter_slots`` (positions and candidates of :meth:`LetterLocator.slots`), the answer letter's entropies
    from the same logits go to ``on_letter_entropy(entropies, rows)`` (:func:`letter_entropies`).
    """
    from transformers import DynamicCache

    prompt_len = input_ids.size(1) - logits_to_keep
    if prompt_len < 1:
        raise ValueError("shared_prompt_logps needs at least one prompt token per row")
    prompt_ids, completion_ids = input_ids[:, :prompt_len], input_ids[:, prompt_len:]
    prompt_mask = attention_mask[:, :prompt_len]
    first, inverse = group_rows(prompt_ids, prompt_mask)

    # 1. The distinct prompts, once: their KV cache and the hidden state of their last token.
    cache = DynamicCache(config=model.config)
    unique_mask = prompt_mask[first]
    prompt_out = model(
        input_ids=prompt_ids[first],
        attention_mask=unique_mask,
        position_ids=_positions(unique_mask),
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    if cache.get_seq_length() != prompt_len:
        raise RuntimeError(
            f"{type(model).__name__} did not fill the KV cache ({cache.get_seq_length()} of {prompt_len} prompt "
            "tokens; gradient checkpointing turns caching off): set grpo.shared_prompt: false"
        )
    last_prompt_logits = prompt_out.logits[:, -1]  # predicts each row's first completion token
    # 2. Each row gets its prompt's cache (an index: gradients flow back to the shared pass).
    cache.batch_select_indices(inverse)
    full_mask = attention_mask
    completion_out = model(
        input_ids=completion_ids,
        attention_mask=full_mask,
        position_ids=_positions(full_mask)[:, prompt_len:],
        past_key_values=cache,
        use_cache=True,
    )
    # 3. The logits that predict each completion token: the prompt's last, then the completion's own but the last.
    logits = torch.cat([last_prompt_logits[inverse].unsqueeze(1), completion_out.logits[:, :-1]], dim=1)
    logps_chunks, entropy_chunks = [], []
    for start in range(0, logits.size(0), rows_per_chunk):
        chunk = logits[start : start + rows_per_chunk].float() / temperature
        log_probs = torch.log_softmax(chunk, dim=-1)
        logps_chunks.append(log_probs.gather(-1, completion_ids[start : start + rows_per_chunk, :, None]).squeeze(-1))
        if compute_entropy:
            entropy_chunks.append(-(log_probs.exp() * log_probs).sum(-1))
    logps = torch.cat(logps_chunks)
    entropies = torch.cat(entropy_chunks) if compute_entropy else None
    if letter_slots is not None and on_letter_entropy is not None:
        on_letter_entropy(*letter_entropies(logits, *letter_slots, temperature=temperature))
    return logps, entropies


class SharedPromptGRPOTrainer(GRPOTrainer):
    """TRL's ``GRPOTrainer`` that runs each distinct prompt once per pass (module docstring).

    ``shared_prompt=False`` gives TRL's behaviour exactly; otherwise every case the trick does not cover falls
    back to TRL's code, logged once.
    """

    def __init__(
        self, *args: Any, shared_prompt: bool = True, dynamic_sampling: int = 0, letter_entropy_coef: float = 0.0,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self.shared_prompt = shared_prompt and self._shared_prompt_possible()
        if dynamic_sampling < 0:
            raise ValueError(f"dynamic_sampling must be >= 0 rounds, got {dynamic_sampling}")
        self.dynamic_sampling = dynamic_sampling
        if dynamic_sampling:
            self._check_dynamic_sampling()
        if letter_entropy_coef < 0:
            raise ValueError(f"letter_entropy_coef must be >= 0, got {letter_entropy_coef}")
        self.letter_entropy_coef = letter_entropy_coef
        self._letter_locator = LetterLocator(self._tokenizer) if letter_entropy_coef else None
        self._letter_slots: tuple[torch.Tensor, torch.Tensor] | None = None  # set while the policy loss runs
        self._letter_entropy: torch.Tensor | None = None  # the policy pass's letter entropies, one per answered row
        self._skips_flat_batches = self._flat_batches_skippable()
        if letter_entropy_coef and not self.shared_prompt:
            raise ValueError(
                "grpo.letter_entropy_coef needs the shared-prompt trainer (one process, text model, no vLLM, no "
                "gradient checkpointing, grpo.shared_prompt: true); set grpo.letter_entropy_coef: 0"
            )

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

    def _one_process(self) -> bool:
        return self.accelerator.num_processes == 1 and not self.is_deepspeed_enabled and not self.is_fsdp_enabled

    def _shared_prompt_possible(self) -> bool:
        reasons = []
        if not self._one_process():
            reasons.append("several processes / DeepSpeed / FSDP")
        if self.use_vllm or getattr(self, "use_transformers_continuous_batching", False):
            reasons.append("vLLM or continuous-batching generation")
        if self.args.activation_checkpointing if hasattr(self.args, "activation_checkpointing") else False:
            reasons.append("gradient checkpointing (it turns the KV cache off in training)")
        if getattr(self, "_is_vlm", False):
            reasons.append("a vision-language model")
        if not supports_shared_prompt(self.accelerator.unwrap_model(self.model)):
            reasons.append("logits transformed after the LM head")
        if reasons:
            log.info("shared-prompt GRPO off (%s): using TRL's per-sequence passes", "; ".join(reasons))
            return False
        return True

    # -- advantages and dynamic sampling ----------------------------------------------------------------------------

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """TRL's generation and scoring, with exact zero-variance advantages, then dynamic sampling if asked.

        With ``dynamic_sampling`` rounds, a training batch's constant groups are replaced by fresh prompts' groups
        until none is left or the rounds are spent (:mod:`embodied_r.training.dynamic_sampling`).
        """
        output = self._score_groups(inputs)
        if not self.model.training or self.dynamic_sampling == 0:
            return output
        group = self.num_generations
        order = replacement_order(len(self.train_dataset), self.args.seed, self.state.global_step)
        seen = {_prompt_key(row) for row in inputs}
        pool = (row for row in map(self.train_dataset.__getitem__, order) if _prompt_key(row) not in seen)
        draws = 1
        for _ in range(self.dynamic_sampling):
            pairs = list(zip(flat_groups(output["advantages"], group), pool, strict=False))  # no row drawn past need
            if not pairs:
                break
            todo, fresh = [g for g, _ in pairs], [row for _, row in pairs]
            seen.update(_prompt_key(row) for row in fresh)
            redrawn = self._score_groups([dict(row) for row in fresh for _ in range(group)])
            output = replace_groups(output, redrawn, todo, group, self._tokenizer.pad_token_id)
            draws += 1
        metrics = self._metrics["train"]
        metrics["dynamic_sampling/draws"].append(float(draws))
        # Measured on what reaches the loss.
        num_groups = output["advantages"].numel() // group
        metrics["dynamic_sampling/zero_std_trained"].append(len(flat_groups(output["advantages"], group)) / num_groups)
        return output

    def _score_groups(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """TRL's ``_generate_and_score_completions`` with every zero-variance group's advantage exactly 0.

        TRL's float32 group mean misses equal rewards by an ulp when the weights are not binary fractions
        (:mod:`embodied_r.training.advantages`); ``frac_reward_zero_std`` is recounted. Applies to every run, shared
        prompt or not; with ``normalize_then_sum`` (not used here) TRL's advantages are batch-normalised and left
        as they are.
        """
        output = super()._generate_and_score_completions(inputs)
        if self._letter_locator is not None and self.model.training:
            positions, candidates = self._letter_locator.slots(
                output["completion_ids"], output["completion_mask"], [row.get("choices") or () for row in inputs]
            )
            output["letter_positions"], output["letter_candidates"] = positions, candidates
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

    # -- the answer-letter entropy bonus -----------------------------------------------------------------------------

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        """TRL's loss, minus ``letter_entropy_coef`` × the mean entropy of the answer letter (module docstring).

        A training micro-batch whose advantages are all 0 skips the passes (:meth:`_flat_batch`).
        """
        flat = self._flat_batch(inputs)
        if self.model.training:
            self._metrics["train"]["flat_batch_skipped"].append(float(flat))
        if flat:
            return _zero_gradient_loss(model)
        if not self.letter_entropy_coef or "letter_positions" not in inputs:
            return super()._compute_loss(model, inputs)
        self._letter_slots = (inputs["letter_positions"], inputs["letter_candidates"])
        try:
            loss = super()._compute_loss(model, inputs)
        finally:
            self._letter_slots = None
            entropies, self._letter_entropy = self._letter_entropy, None
        mode = "train" if self.model.training else "eval"
        answered = inputs["letter_positions"].ge(0).float().mean().item()
        self._metrics[mode]["letter_entropy/answered"].append(answered)
        if entropies is None or entropies.numel() == 0:
            return loss
        bonus = entropies.mean()
        self._metrics[mode]["letter_entropy"].append(bonus.item())
        accumulation = self.current_gradient_accumulation_steps if mode == "train" else 1.0
        return loss - self.letter_entropy_coef * bonus / accumulation

    def _flat_batch(self, inputs: dict[str, Any]) -> bool:
        """Whether this training micro-batch's loss is 0 with a zero gradient whatever the weights: every advantage
        is 0 (groups whose rewards were all equal) and the loss has no term free of the advantage
        (:meth:`_flat_batches_skippable`). TRL's forward and backward would then compute exact zeros; skipping them
        saves most of a step where most groups are constant (``frac_reward_zero_std``), and the optimizer still
        steps on zero gradients as it would have (Adam's moments decay, the schedule advances: the same weights).
        Those steps log no ``entropy`` or ``clip_ratio`` (nothing was computed); ``flat_batch_skipped`` counts
        them.
        """
        return self._skips_flat_batches and self.model.training and not bool(inputs["advantages"].any())

    def _flat_batches_skippable(self) -> bool:
        """No loss term free of the advantage (KL, entropy bonuses, a router loss), and one process: DDP, DeepSpeed
        and FSDP synchronise gradients through the wrapped forward, which every rank must run."""
        return (
            self._one_process()
            and self.beta == 0.0
            and not self._entropy_bonus_enabled
            and not self.letter_entropy_coef
            and not self.aux_loss_enabled
            and self.loss_type in _ADVANTAGE_LINEAR_LOSSES
        )

    # -- log-probabilities ------------------------------------------------------------------------------------------

    def _get_per_token_logps_and_entropies(
        self, model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int,
        batch_size: int | None = None, compute_entropy: bool = False, compute_aux_loss: bool = False,
        **multimodal: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:  # fmt: skip
        if not self.shared_prompt or compute_aux_loss or any(v is not None for v in multimodal.values()):
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **multimodal,
            )  # fmt: skip
        slots = self._letter_slots if torch.is_grad_enabled() else None
        with self.accelerator.autocast():
            logps, entropies = shared_prompt_logps(
                model,
                input_ids,
                attention_mask,
                logits_to_keep,
                temperature=self.temperature,
                compute_entropy=compute_entropy,
                letter_slots=slots,
                on_letter_entropy=self._keep_letter_entropy,
            )
        return logps, entropies, None

    def _keep_letter_entropy(self, entropies: torch.Tensor, rows: torch.Tensor) -> None:
        self._letter_entropy = entropies  # the loss needs their mean only, not which rows they belong to

    # -- generation -------------------------------------------------------------------------------------------------

    def _generate_single_turn(
        self, prompt_ids: list[list[int]], images: Any, multimodal_fields: dict, num_generations: int,
        has_tool_images: bool = False,
    ) -> tuple[list[list[int]], Any]:  # fmt: skip
        if not self.shared_prompt or multimodal_fields or (images is not None and any(images)):
            return super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        device = self.accelerator.device
        tensors = [torch.tensor(ids) for ids in prompt_ids]
        pad_id = self._tokenizer.pad_token_id
        padded = pad(tensors, padding_value=pad_id, padding_side="left", pad_to_multiple_of=self.pad_to_multiple_of)
        mask = pad([torch.ones_like(t) for t in tensors], padding_value=0, padding_side="left",
                   pad_to_multiple_of=self.pad_to_multiple_of)  # fmt: skip
        padded, mask = padded.to(device), mask.to(device)
        with (
            profiling_context(self, "transformers.generate"),
            unwrap_model_for_generation(
                self.model_wrapped,
                self.accelerator,
                gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                generation_kwargs=self.generation_kwargs,
                gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
            ) as unwrapped_model,
            torch.no_grad(),
            self.accelerator.autocast(),
        ):
            sequences = generate_with_shared_prompts(unwrapped_model, padded, mask, self.generation_config)
        completion_ids = sequences[:, padded.size(1) :]
        # As TRL: keep each completion up to and including its first EOS.
        is_eos = torch.isin(completion_ids, torch.tensor(self.eos_token_ids, device=device))
        eos_idx = torch.full((is_eos.size(0),), is_eos.size(1), dtype=torch.long, device=device)
        eos_idx[is_eos.any(dim=1)] = is_eos.int().argmax(dim=1)[is_eos.any(dim=1)]
        keep = torch.arange(is_eos.size(1), device=device).expand(is_eos.size(0), -1) <= eos_idx.unsqueeze(1)
        return [c[m].tolist() for c, m in zip(completion_ids.cpu(), keep.cpu(), strict=True)], None


def _zero_gradient_loss(model: Any) -> torch.Tensor:
    """A loss of 0 whose backward gives every trainable weight a gradient of zeros (not ``None``).

    The optimizer must see zeros, as after a real pass with zero advantages: PyTorch's optimizers skip weights whose
    gradient is ``None``, which would freeze Adam's moments and weight decay for that step.
    """
    weights = [p for p in model.parameters() if p.requires_grad]
    if not weights:
        raise ValueError("the policy has no trainable weights")
    return torch.stack([p.reshape(-1)[0] for p in weights]).sum() * 0.0


def _prompt_key(row: dict[str, Any]) -> str:
    """A training row's prompt as a hashable key (conversational prompts are lists of messages)."""
    prompt = row["prompt"]
    return prompt if isinstance(prompt, str) else repr(prompt)


def generate_with_shared_prompts(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, generation_config: Any
) -> torch.Tensor:
    """``model.generate`` for left-padded rows many of which repeat a prompt, pre-filling each prompt once.

    The distinct prompts but their last token are run once into a KV cache, which is repeated for each row;
    ``generate`` then starts from the last prompt token. Returns ``generate``'s sequences (prompt + completion).
    """
    from transformers import DynamicCache

    first, inverse = group_rows(input_ids, attention_mask)
    cache = DynamicCache(config=model.config)
    prefix_mask = attention_mask[first, :-1]
    model(
        input_ids=input_ids[first, :-1],
        attention_mask=prefix_mask,
        position_ids=_positions(prefix_mask),
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    cache.batch_select_indices(inverse)
    return model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        past_key_values=cache,
        generation_config=generation_config,
    )


__all__ = ["SharedPromptGRPOTrainer", "generate_with_shared_prompts", "group_rows", "shared_prompt_logps"]
