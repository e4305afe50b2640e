"""The prompt prefix every row shares, computed once per batch instead of once per row.

Every Embodied-R prompt starts with the same tokens: the R1 system prompt, the agent-role sentence and the video
preamble (229 of a median 555 tokens for SmolLM2's chat template on the cpu-long data). A causal LM computes the
same keys, values and hidden states for those tokens in every row, so a batch can run them once (batch size 1),
repeat the KV cache for its rows and run only each row's own tokens on top. Positions skip padding (as
``generate`` computes them) and rotary attention depends on relative positions only, so the result is the plain
forward's up to float rounding; gradients flow back into the shared pass through the repeat.

Used by greedy evaluation (:func:`generate_after_common_prefix`) and by the supervised trainer's loss
(:func:`hidden_after_common_prefix`). GRPO's :mod:`embodied_r.training.shared_prompt` shares whole prompts among
a group's completions; this shares the common start among different prompts.

>>> common_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]])
2
>>> common_prefix_length([[1, 2], [1, 2, 3]])  # each row keeps at least one token of its own
1
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

#: Below this many shared tokens the extra forward call costs more than it saves.
MIN_SHARED_TOKENS = 16


def common_prefix_length(sequences: Sequence[Sequence[int]], *, keep: int = 1) -> int:
    """Length of the token prefix all ``sequences`` share, leaving at least ``keep`` tokens of each row after it."""
    if not sequences:
        return 0
    first = sequences[0]
    limit = min(len(s) for s in sequences) - keep
    n = 0
    while n < limit and all(s[n] == first[n] for s in sequences):
        n += 1
    return max(n, 0)


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip padding (as ``generate`` computes them)."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def pad_after_prefix(
    sequences: Sequence[Sequence[int]], prefix_len: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)``: the shared prefix, then each row's own tokens left-padded to one width.

    >>> ids, mask = pad_after_prefix([[7, 8, 1], [7, 8, 2, 3]], 2, 0)
    >>> ids.tolist(), mask.tolist()
    ([[7, 8, 0, 1], [7, 8, 2, 3]], [[1, 1, 0, 1], [1, 1, 1, 1]])
    """
    rests = [list(s[prefix_len:]) for s in sequences]
    width = max(len(r) for r in rests)
    ids = torch.full((len(rests), prefix_len + width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    ids[:, :prefix_len] = torch.tensor(list(sequences[0][:prefix_len]), dtype=torch.long)
    mask[:, :prefix_len] = 1
    for i, rest in enumerate(rests):
        ids[i, ids.size(1) - len(rest) :] = torch.tensor(rest, dtype=torch.long)
        mask[i, ids.size(1) - len(rest) :] = 1
    return ids, mask


def prefill(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, prefix_len: int, upto: int) -> Any:
    """A KV cache of tokens ``[0, upto)`` of every row, the first ``prefix_len`` computed once for the batch."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    model(input_ids=input_ids[:1, :prefix_len], past_key_values=cache, use_cache=True, logits_to_keep=1)
    cache.batch_repeat_interleave(input_ids.size(0))
    if upto > prefix_len:
        mask = attention_mask[:, :upto]
        model(
            input_ids=input_ids[:, prefix_len:upto],
            attention_mask=mask,
            position_ids=positions(mask)[:, prefix_len:],
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
    return cache


def generate_after_common_prefix(
    model: Any, sequences: Sequence[Sequence[int]], prefix_len: int, pad_id: int, **generate_kwargs: Any
) -> list[list[int]]:
    """``model.generate`` for token ``sequences`` that share their first ``prefix_len`` tokens: the new tokens.

    The prefix is run once, each row's own tokens but the last are run on the repeated cache, and ``generate``
    continues from the last prompt token; ``generate_kwargs`` go to ``generate`` (e.g. ``do_sample=False``).
    """
    device = next(model.parameters()).device
    ids, mask = (t.to(device) for t in pad_after_prefix(sequences, prefix_len, pad_id))
    cache = prefill(model, ids, mask, prefix_len, ids.size(1) - 1)
    out = model.generate(input_ids=ids, attention_mask=mask, past_key_values=cache, **generate_kwargs)
    return out[:, ids.size(1) :].tolist()


def batch_prefix_length(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> int:
    """Leading positions where every row has the same real (unmasked) token."""
    same = (input_ids == input_ids[:1]).all(0) & attention_mask.bool().all(0)
    n = int(same.long().cumprod(0).sum())
    return min(n, input_ids.size(1) - 1)


def hidden_after_common_prefix(
    backbone: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, prefix_len: int
) -> torch.Tensor:
    """The backbone's last hidden states at positions ``prefix_len:`` of each row, the prefix run once.

    ``backbone`` is the model without its LM head (``model.base_model``); rows may be right- or left-padded after
    the prefix. The prefix's own hidden states are not returned (callers need them only where labels are kept).
    """
    from transformers import DynamicCache

    cache = DynamicCache(config=backbone.config)
    backbone(input_ids=input_ids[:1, :prefix_len], past_key_values=cache, use_cache=True)
    cache.batch_repeat_interleave(input_ids.size(0))
    out = backbone(
        input_ids=input_ids[:, prefix_len:],
        attention_mask=attention_mask,
        position_ids=positions(attention_mask)[:, prefix_len:],
        past_key_values=cache,
        use_cache=True,
    )
    return out.last_hidden_state


__all__ = [
    "MIN_SHARED_TOKENS",
    "batch_prefix_length",
    "common_prefix_length",
    "generate_after_common_prefix",
    "hidden_after_common_prefix",
    "pad_after_prefix",
    "positions",
    "prefill",
]
