"""The entropy bonus on the answer letter alone (``grpo.letter_entropy_coef``): where the letter is, its entropy,
and that the trainer's loss carries exactly that bonus (real TRL trainer, tiny model built from a config)."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from embodied_r.training.letter_entropy import WIDTH, LetterLocator, letter_entropies

COMPLETION = "<think>the chair is left</think>\n<answer>B</answer>"


@pytest.fixture
def tokenizer(tiny_lm):
    return AutoTokenizer.from_pretrained(tiny_lm)


def test_the_letter_token_and_its_variants_are_found(tokenizer):
    locator = LetterLocator(tokenizer)
    ids = tokenizer.encode(COMPLETION, add_special_tokens=False)
    index, candidates = locator.locate(ids, ["A", "B", "C", "D"])
    assert tokenizer.decode([ids[index]]) == "B"
    assert tokenizer.decode(ids[:index]).endswith("<answer>")
    assert [tokenizer.decode([c]) for c in candidates] == ["A", "B", "C", "D"]
    assert candidates[1] == ids[index]
    # Three options: three candidates.
    assert len(locator.locate(ids, ["A", "B", "C"])[1]) == 3


@pytest.mark.parametrize(
    "text, choices",
    [
        ("<think>B</think>", "ABCD"),  # no answer block
        ("<answer>D</answer>", "ABC"),  # a letter the question does not offer
        ("<answer>the answer is B</answer>", "ABCD"),  # not a letter right after the tag
        ("<answer>", "ABCD"),  # truncated after the tag
    ],
)
def test_completions_without_an_answer_letter_get_no_slot(tokenizer, text, choices):
    assert LetterLocator(tokenizer).locate(tokenizer.encode(text, add_special_tokens=False), list(choices)) is None


def test_the_last_answer_block_and_a_spaced_letter_count(tokenizer):
    locator = LetterLocator(tokenizer)
    ids = tokenizer.encode("<answer>A</answer><answer> C</answer>", add_special_tokens=False)
    index, candidates = locator.locate(ids, ["A", "B", "C", "D"])
    assert tokenizer.decode([ids[index]]).strip() == "C" and index > 3
    assert candidates[2] == ids[index]


def test_batch_slots_skip_padding_and_rows_without_choices(tokenizer):
    locator = LetterLocator(tokenizer)
    rows = [tokenizer.encode(t, add_special_tokens=False) for t in (COMPLETION, "<think>no</think>", COMPLETION)]
    width = max(map(len, rows)) + 2
    ids = torch.full((3, width), tokenizer.pad_token_id)
    mask = torch.zeros(3, width, dtype=torch.long)
    for r, row in enumerate(rows):
        ids[r, : len(row)], mask[r, : len(row)] = torch.tensor(row), 1
    positions, candidates = locator.slots(ids, mask, [["A", "B", "C", "D"], ["A", "B"], []])
    assert positions.tolist()[1:] == [-1, -1] and positions[0] >= 0
    assert candidates.shape == (3, WIDTH)
    assert (candidates[0, :4] >= 0).all() and (candidates[0, 4:] == -1).all() and (candidates[1:] == -1).all()


def test_letter_entropy_is_over_the_options_only_and_differentiable():
    logits = torch.zeros(2, 4, 10, requires_grad=True)
    positions = torch.tensor([2, 3])
    candidates = torch.tensor([[1, 2, 3, -1, -1], [4, 5, -1, -1, -1]])
    with torch.no_grad():
        logits[0, 2, 9] = 30.0  # a non-letter token dominates: the letters' renormalised distribution stays uniform
        logits[1, 3, 4] = 2.0
    entropies, rows = letter_entropies(logits, positions, candidates)
    assert rows.tolist() == [0, 1]
    assert entropies[0].item() == pytest.approx(math.log(3), abs=1e-5)
    p = torch.softmax(torch.tensor([2.0, 0.0]), 0)
    assert entropies[1].item() == pytest.approx(-(p * p.log()).sum().item(), abs=1e-5)
    entropies.sum().backward()
    # Raising the entropy lowers the favourite letter's logit and moves nothing outside the options.
    assert logits.grad[1, 3, 4] < 0 < logits.grad[1, 3, 5]
    assert logits.grad[0, 2, 9] == 0 and logits.grad[1, 3, 0] == 0


def test_a_higher_temperature_flattens_the_letters():
    logits = torch.zeros(1, 1, 4)
    logits[0, 0, 0] = 3.0
    slots = (torch.tensor([0]), torch.tensor([[0, 1, 2, 3]]))
    cold, _ = letter_entropies(logits, *slots, temperature=0.5)
    hot, _ = letter_entropies(logits, *slots, temperature=2.0)
    assert cold.item() < hot.item() <= math.log(4)


def _trainer(tiny_lm, tmp_path, coef: float, shared_prompt: bool = True):
    from datasets import Dataset

    from embodied_r.training.config import GrpoTrainingConfig
    from embodied_r.training.grpo import grpo_args
    from embodied_r.training.shared_prompt import SharedPromptGRPOTrainer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    cfg = GrpoTrainingConfig(num_generations=2, prompts_per_step=1, max_completion_length=16, precision="fp32",
                             beta=0.0, max_steps=1, letter_entropy_coef=coef)  # fmt: skip
    args = grpo_args(cfg, tmp_path, world_size=1, reward_weights=[1.0], has_eval=False)
    data = Dataset.from_list([{"prompt": "Which is closer? A. chair B. table C. door", "choices": ["A", "B", "C"]}])
    return SharedPromptGRPOTrainer(
        model=model, processing_class=tokenizer, reward_funcs=[lambda completions, **_: [0.0] * len(completions)],
        args=args, train_dataset=data, shared_prompt=shared_prompt, letter_entropy_coef=coef,
    )  # fmt: skip


def test_the_trainer_loss_carries_exactly_the_letter_bonus(tiny_lm, tmp_path):
    """The loss with the bonus is TRL's loss minus coef × the mean letter entropy, that entropy computed
    independently from a plain forward of the model; completions without a letter add nothing."""
    coef = 0.7
    trainer = _trainer(tiny_lm, tmp_path / "with", coef)
    plain = _trainer(tiny_lm, tmp_path / "without", 0.0)
    tok = trainer.processing_class
    prompt = tok.encode("Which is closer? A. chair B. table C. door", add_special_tokens=False)
    completions = [tok.encode(t, add_special_tokens=False) for t in (COMPLETION, "<answer> C</answer>", "<think>")]
    width = max(map(len, completions))
    completion_ids = torch.full((3, width), tok.pad_token_id)
    completion_mask = torch.zeros(3, width, dtype=torch.long)
    for r, row in enumerate(completions):
        completion_ids[r, : len(row)], completion_mask[r, : len(row)] = torch.tensor(row), 1
    positions, candidates = trainer._letter_locator.slots(completion_ids, completion_mask, [["A", "B", "C"]] * 3)
    assert positions.ge(0).tolist() == [True, True, False]
    inputs = {
        "prompt_ids": torch.tensor([prompt] * 3),
        "prompt_mask": torch.ones(3, len(prompt), dtype=torch.long),
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "advantages": torch.tensor([1.0, -0.5, -0.5]),
        "num_items_in_batch": completion_mask.sum(),
    }
    for t in (trainer, plain):  # as the training loop sets them
        t.model.train()
        t.current_gradient_accumulation_steps = 1
    with_bonus = trainer.compute_loss(trainer.model, {**inputs, "letter_positions": positions,
                                                      "letter_candidates": candidates})  # fmt: skip
    without = plain.compute_loss(plain.model, inputs)

    ids = torch.cat([inputs["prompt_ids"], completion_ids], dim=1)
    mask = torch.cat([inputs["prompt_mask"], completion_mask], dim=1)
    with torch.no_grad():
        logits = plain.model(input_ids=ids, attention_mask=mask).logits[:, len(prompt) - 1 : -1]
    entropies, rows = letter_entropies(logits, positions, candidates)
    assert rows.tolist() == [0, 1] and (entropies > 0).all()
    assert with_bonus.item() == pytest.approx(without.item() - coef * entropies.mean().item(), abs=1e-5)
    assert trainer._metrics["train"]["letter_entropy"][-1] == pytest.approx(entropies.mean().item(), abs=1e-5)
    assert trainer._metrics["train"]["letter_entropy/answered"][-1] == pytest.approx(2 / 3)
    with_bonus.backward()  # the bonus has a gradient through the shared-prompt pass
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.model.parameters())


def test_the_letter_bonus_needs_the_shared_prompt_trainer(tiny_lm, tmp_path):
    with pytest.raises(ValueError, match="letter_entropy_coef needs the shared-prompt trainer"):
        _trainer(tiny_lm, tmp_path, 0.5, shared_prompt=False)


@pytest.mark.slow
def test_a_grpo_run_applies_the_letter_bonus_from_its_config(tiny_lm, tiny_rows, tmp_path):
    """``grpo.letter_entropy_coef`` reaches the trainer: every step records the share of completions it acted on
    (the random tiny model rarely writes an ``<answer>`` letter, so the share may be 0, but it is measured)."""
    from tests.training.test_grpo import logged, tiny_cfg, train

    out = tmp_path / "run"
    train(tiny_lm, tiny_rows, out, tiny_cfg(letter_entropy_coef=0.5, beta=0.0))
    answered = logged(out, "letter_entropy/answered")
    assert sorted(answered) == [1, 2] and all(0.0 <= v <= 1.0 for v in answered.values())
