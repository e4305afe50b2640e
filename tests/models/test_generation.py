"""Loading a model folder to decode, and sampling groups as GRPO does, on the tiny model built from a config."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from embodied_r.evaluation.generate import generate_completions
from embodied_r.models.generation import load_for_generation, sample_answer_groups, sample_completion_groups
from embodied_r.models.tiny import write_tiny_rows
from embodied_r.training.dataset import read_training_rows


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list:
    return read_training_rows(write_tiny_rows(tmp_path_factory.mktemp("generation_rows") / "train.jsonl", n=3))


def test_load_for_generation_pads_on_the_left_in_eval_mode(tiny_lm: Path, tmp_path: Path) -> None:
    model, tokenizer = load_for_generation(tiny_lm, precision="fp32")
    assert tokenizer.padding_side == "left" and tokenizer.pad_token == "<pad>"
    assert not model.training and next(model.parameters()).dtype == torch.float32
    # a tokenizer without a pad token pads with EOS
    no_pad = shutil.copytree(tiny_lm, tmp_path / "no_pad")
    tok = type(tokenizer).from_pretrained(no_pad)
    tok.pad_token = None
    tok.save_pretrained(no_pad)
    _, tokenizer = load_for_generation(no_pad, precision="fp32")
    assert tokenizer.pad_token == tokenizer.eos_token == "<|im_end|>"


@pytest.mark.slow
def test_sampled_groups_are_continuations_of_the_prompt_and_seeded(tiny_lm: Path, rows: list) -> None:
    model, tokenizer = load_for_generation(tiny_lm, precision="fp32")
    # near-zero temperature: every completion of a group is the greedy one, as generate_completions decodes it
    cold = sample_completion_groups(model, tokenizer, rows, 3, temperature=1e-4, max_new_tokens=6)
    greedy = generate_completions(tiny_lm, rows, max_new_tokens=6, batch_size=2, precision="fp32", progress=False)
    assert cold == [[g.text] * 3 for g in greedy]

    done: list[tuple[int, int]] = []
    hot = sample_completion_groups(
        model, tokenizer, rows, 4, temperature=1.0, max_new_tokens=6, seed=1, progress=lambda d, t: done.append((d, t))
    )
    assert done == [(1, 3), (2, 3), (3, 3)]
    assert [len(g) for g in hot] == [4, 4, 4]
    assert sample_completion_groups(model, tokenizer, rows, 4, temperature=1.0, max_new_tokens=6, seed=1) == hot
    assert sample_completion_groups(model, tokenizer, rows, 4, temperature=1.0, max_new_tokens=6, seed=2) != hot
    assert any(len(set(g)) > 1 for g in hot), "sampling at temperature 1 varies within a group"
    # the answers are the completions read as the accuracy reward reads them (the random LM writes no <answer>)
    answers = sample_answer_groups(model, tokenizer, rows, 4, temperature=1.0, max_new_tokens=6, seed=1)
    assert answers == [[None] * 4] * 3
    with pytest.raises(ValueError, match="k must be >= 1"):
        sample_completion_groups(model, tokenizer, rows, 0)
