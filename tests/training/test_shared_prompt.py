"""Shared-prompt GRPO computes what TRL computes: log-probabilities, entropies, gradients and generations."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, GenerationConfig
from trl.trainer.utils import add_fused_lm_head

from embodied_r.training.shared_prompt import generate_with_shared_prompts, group_rows, shared_prompt_logps

TEMPERATURE = 0.7


@pytest.fixture
def model(tiny_lm):
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_pretrained(tiny_lm, dtype=torch.float32)
    add_fused_lm_head(m, temperature=TEMPERATURE, outputs=("log_probs", "entropy"))
    return m


def grpo_batch(vocab: int, pad: int, generations: int = 3, completion_len: int = 6):
    """Two prompts of different lengths, ``generations`` completions each, interleaved as TRL shuffles them;
    prompts left-padded, completions right-padded (one ends early)."""
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(5, vocab, (17,), generator=g), torch.randint(5, vocab, (11,), generator=g)]
    rows = 2 * generations
    width = max(len(p) for p in prompts)
    prompt_ids = torch.full((rows, width), pad)
    prompt_mask = torch.zeros(rows, width, dtype=torch.long)
    for r in range(rows):
        p = prompts[r % 2]
        prompt_ids[r, width - len(p) :] = p
        prompt_mask[r, width - len(p) :] = 1
    completion = torch.randint(5, vocab, (rows, completion_len), generator=g)
    completion_mask = torch.ones_like(completion)
    completion[1, 4:], completion_mask[1, 4:] = pad, 0
    return prompt_ids, prompt_mask, completion, completion_mask


def trl_logps(model, input_ids, mask, keep):
    """TRL's own computation (``GRPOTrainer._get_per_token_logps_and_entropies``): one sequence per row."""
    labels = input_ids.masked_fill(mask == 0, -100)
    labels[:, :-keep] = -100
    out = model(input_ids=input_ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    return out.log_probs[:, -keep:], out.entropy[:, -keep:]


def test_group_rows_finds_each_distinct_prompt_once():
    ids = torch.tensor([[0, 5, 6], [1, 2, 3], [0, 5, 6], [9, 5, 6]])
    mask = torch.tensor([[0, 1, 1], [1, 1, 1], [0, 1, 1], [0, 1, 1]])  # row 3 differs only under padding
    first, inverse = group_rows(ids, mask)
    assert first.tolist() == [0, 1]
    assert inverse.tolist() == [0, 1, 0, 0]


def test_logps_entropies_and_gradients_match_trl(model):
    pad = model.config.pad_token_id
    prompt_ids, prompt_mask, completion, completion_mask = grpo_batch(model.config.vocab_size, pad)
    ids, mask, keep = torch.cat([prompt_ids, completion], 1), torch.cat([prompt_mask, completion_mask], 1), 6
    valid = completion_mask.bool()

    model.zero_grad()
    expected, expected_entropy = trl_logps(model, ids, mask, keep)
    (expected * completion_mask).sum().backward()
    expected_grads = [p.grad.clone() for p in model.parameters()]

    model.zero_grad()
    got, entropy = shared_prompt_logps(model, ids, mask, keep, temperature=TEMPERATURE, compute_entropy=True)
    (got * completion_mask).sum().backward()

    torch.testing.assert_close(got[valid], expected[valid], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(entropy[valid], expected_entropy[valid], atol=1e-5, rtol=1e-5)
    for p, g in zip(model.parameters(), expected_grads, strict=True):
        torch.testing.assert_close(p.grad, g, atol=1e-5, rtol=1e-4)


def test_shared_generation_equals_plain_generate(model):
    pad = model.config.pad_token_id
    prompt_ids, prompt_mask, _, _ = grpo_batch(model.config.vocab_size, pad)
    config = GenerationConfig(do_sample=False, max_new_tokens=8, pad_token_id=pad, eos_token_id=None)
    with torch.no_grad():
        plain = model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, generation_config=config)
        shared = generate_with_shared_prompts(model, prompt_ids, prompt_mask, config)
    assert torch.equal(plain, shared)


def test_a_model_that_does_not_fill_its_cache_is_refused(model):
    """Gradient checkpointing turns the KV cache off in training: the shared pass must fail, not mislead."""
    pad = model.config.pad_token_id
    prompt_ids, prompt_mask, completion, completion_mask = grpo_batch(model.config.vocab_size, pad)
    model.gradient_checkpointing_enable()
    model.train()
    with pytest.raises(RuntimeError, match="did not fill the KV cache"):
        shared_prompt_logps(
            model, torch.cat([prompt_ids, completion], 1), torch.cat([prompt_mask, completion_mask], 1), 6
        )


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [{"beta": 0.01}, {"beta": 0.0, "entropy_coef": 0.5, "top_entropy_quantile": 0.5}],
    ids=["kl", "entropy-bonus"],
)
def test_a_grpo_run_trains_the_same_weights_with_and_without_sharing(tiny_lm, tiny_rows, tmp_path, extra):
    """Two real GRPO steps with the same seed: same completions, same loss, same weights (float precision) — with
    the KL term, and with the entropy bonus on the top half of the tokens by entropy (its gradient flows through
    the shared pass's entropies as through TRL's)."""
    from safetensors.torch import load_file

    from tests.training.test_grpo import tiny_cfg, train

    runs = {}
    for shared in (True, False):
        cfg = tiny_cfg(shared_prompt=shared, temperature=TEMPERATURE, **extra)
        outcome = train(tiny_lm, tiny_rows, tmp_path / str(shared), cfg)
        runs[shared] = load_file(f"{outcome.final_model_path}/model.safetensors")
    for name, tensor in runs[True].items():
        torch.testing.assert_close(tensor, runs[False][name], atol=1e-5, rtol=1e-4, msg=name)
    assert any(not torch.equal(t, load_file(f"{tiny_lm}/model.safetensors")[n]) for n, t in runs[True].items())
    if "entropy_coef" in extra:  # the bonus reaches the loss: with a visible lr, with and without it train apart
        weights = {}
        for name, terms in (("with", extra), ("without", {**extra, "entropy_coef": 0.0})):
            cfg = tiny_cfg(temperature=TEMPERATURE, learning_rate=1e-2, warmup_ratio=0.0, **terms)
            outcome = train(tiny_lm, tiny_rows, tmp_path / name, cfg)
            weights[name] = load_file(f"{outcome.final_model_path}/model.safetensors")
        gap = max((t - weights["without"][n]).abs().max().item() for n, t in weights["with"].items())
        assert gap > 1e-3, gap
