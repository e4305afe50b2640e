"""The shared prompt prefix computed once: same greedy tokens, same hidden states and gradients as plain passes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from embodied_r.evaluation import generate as gen
from embodied_r.evaluation.generate import generate_completions
from embodied_r.models.tiny import write_tiny_rows
from embodied_r.training.common_prefix import (
    batch_prefix_length,
    common_prefix_length,
    generate_after_common_prefix,
    hidden_after_common_prefix,
    pad_after_prefix,
    positions,
    prefill,
)
from embodied_r.training.dataset import read_training_rows

PREFIX = list(range(5, 45))  # 40 shared tokens


def _sequences() -> list[list[int]]:
    # Own parts of different lengths, so rows are padded between the prefix and their own tokens.
    return [[*PREFIX, 50, 51, 52, 53, 54, 55, 56], [*PREFIX, 60, 61], [*PREFIX, 70, 71, 72, 73], [*PREFIX, 80]]


@pytest.fixture(scope="module")
def model(tiny_lm: Path):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(str(tiny_lm), dtype=torch.float32).eval()


def test_common_prefix_length_edges() -> None:
    assert common_prefix_length([]) == 0
    assert common_prefix_length([[1, 2, 3]]) == 2  # one row: all but its last token
    assert common_prefix_length([[1, 2, 3], [9, 2, 3]]) == 0
    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 3, 5]], keep=2) == 2


def test_batch_prefix_length_stops_at_padding_and_differences() -> None:
    ids = torch.tensor([[1, 2, 3, 4, 0], [1, 2, 3, 9, 9], [1, 2, 3, 4, 4]])
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert batch_prefix_length(ids, mask) == 3
    mask[1, 1] = 0
    assert batch_prefix_length(ids, mask) == 1


def test_generation_after_prefix_matches_plain_generate(model) -> None:
    sequences = _sequences()
    shared = generate_after_common_prefix(model, sequences, len(PREFIX), 0, do_sample=False, max_new_tokens=6)
    plain = []
    for seq in sequences:  # one by one: no padding at all
        out = model.generate(input_ids=torch.tensor([seq]), do_sample=False, max_new_tokens=6, pad_token_id=0)
        plain.append(out[0, len(seq) :].tolist())
    assert shared == plain


def test_prefill_logits_match_each_row_alone(model) -> None:
    sequences = _sequences()
    ids, mask = pad_after_prefix(sequences, len(PREFIX), 0)
    cache = prefill(model, ids, mask, len(PREFIX), ids.size(1) - 1)
    last = model(input_ids=ids[:, -1:], attention_mask=mask, position_ids=positions(mask)[:, -1:],
                 past_key_values=cache, use_cache=True).logits[:, -1]  # fmt: skip
    for i, seq in enumerate(sequences):
        alone = model(input_ids=torch.tensor([seq])).logits[0, -1]
        torch.testing.assert_close(last[i], alone, rtol=1e-4, atol=1e-5)


def test_hidden_states_and_gradients_match_a_plain_forward(model) -> None:
    sequences = _sequences()
    width = max(map(len, sequences))
    ids = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, seq in enumerate(sequences):  # right-padded, as the supervised collator pads
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
    n = batch_prefix_length(ids, mask)
    assert n == len(PREFIX)

    backbone = model.base_model
    weight = backbone.layers[0].self_attn.q_proj.weight
    model.zero_grad()
    plain = backbone(input_ids=ids, attention_mask=mask).last_hidden_state[:, n:]
    (plain * mask[:, n:, None]).sum().backward()
    plain_grad = weight.grad.clone()
    model.zero_grad()
    shared = hidden_after_common_prefix(backbone, ids, mask, n)
    (shared * mask[:, n:, None]).sum().backward()
    real = mask[:, n:].bool()
    torch.testing.assert_close(shared[real], plain[real], rtol=1e-4, atol=1e-5)
    # The prefix's weights get the gradient of every row through the repeated cache.
    torch.testing.assert_close(weight.grad, plain_grad, rtol=1e-3, atol=1e-5)
    model.zero_grad()


@pytest.mark.slow
def test_generate_completions_shares_the_prefix_and_changes_nothing(
    tiny_lm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = read_training_rows(write_tiny_rows(tmp_path / "rows.jsonl", n=6, split="test"))
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_lm))
    encoded = [tokenizer.apply_chat_template(r.prompt, add_generation_prompt=True, tokenize=True) for r in rows]
    encoded = [e["input_ids"] if isinstance(e, dict) or hasattr(e, "keys") else e for e in encoded]
    assert common_prefix_length(encoded) >= gen.MIN_SHARED_TOKENS  # the rows do share a system prompt and more

    calls = []

    def counting(*args, **kwargs):
        calls.append(len(args[1]))
        return generate_after_common_prefix(*args, **kwargs)

    monkeypatch.setattr(gen, "generate_after_common_prefix", counting)
    shared = generate_completions(tiny_lm, rows, max_new_tokens=5, batch_size=4, progress=False)
    assert calls == [4, 2]
    plain = generate_completions(tiny_lm, rows, max_new_tokens=5, batch_size=4, progress=False, share_prefix=False)
    assert len(calls) == 2  # the plain path does not use it
    assert shared == plain
