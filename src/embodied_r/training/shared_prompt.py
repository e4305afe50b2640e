"""Shared-prompt passes (``grpo.shared_prompt``): the same loss as TRL's, each prompt computed once per group.

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

Measured effect (``benchmarks/grpo.py --rounds 1 --steps 4``, SmolLM2-135M, 1 prompt × 4 completions of 32
tokens, 1 thread, a CPU without AMX in fp32): 23.3 s a step against 58.7 s for a bare TRL script, **2.52× faster**;
the project with TRL's own passes (``grpo.shared_prompt: false``) took 61.6 s (overhead 1.049).

Where the trick does not apply the trainer uses TRL's own code path, logged once: vision inputs, vLLM or
continuous-batching generation, several processes (DDP or DeepSpeed wrap the model's forward, which must then run
once per backward), gradient checkpointing, logit soft-capping or scaling.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from trl.extras.profiling import profiling_context
from trl.models import unwrap_model_for_generation
from trl.trainer.utils import pad

from embodied_r.training.trainer import PaperGRPOTrainer, single_process

log = logging.getLogger(__name__)

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
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probabilities (and entropies) of the last ``logits_to_keep`` tokens of each row.

    ``input_ids`` is TRL's ``cat([prompt_ids, completion_ids])`` (prompts left-padded, completions right-padded);
    each distinct prompt is run once and shared by its rows through the KV cache. Returns tensors of shape
    ``(rows, logits_to_keep)``; entries at completion padding are computed but meaningless (TRL masks them).
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
    return logps, entropies


class SharedPromptGRPOTrainer(PaperGRPOTrainer):
    """The paper's trainer running each distinct prompt once per pass (module docstring).

    Every case the trick does not cover falls back to TRL's code, logged once.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shared_prompt = self._shared_prompt_possible()

    def _shared_prompt_possible(self) -> bool:
        reasons = []
        if not single_process(self):
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
        with self.accelerator.autocast():
            logps, entropies = shared_prompt_logps(
                model,
                input_ids,
                attention_mask,
                logits_to_keep,
                temperature=self.temperature,
                compute_entropy=compute_entropy,
            )
        return logps, entropies, None

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


__all__ = [
    "SharedPromptGRPOTrainer",
    "generate_with_shared_prompts",
    "group_rows",
    "shared_prompt_logps",
    "supports_shared_prompt",
]
