"""The format cold start and the SFT baseline: examples, the completion-only loss, real TRL SFT steps, traces."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from embodied_r.answers import extract_answer
from embodied_r.config import ParamsError, load_params
from embodied_r.data.records import parse_choices
from embodied_r.rewards import make_format_reward
from embodied_r.training.dataset import read_training_rows
from embodied_r.training.rows import TrainingRow
from embodied_r.training.supervised import (
    NEUTRAL_THINK,
    SUPERVISED_TRAINING_FILE,
    ColdStartConfig,
    SFTConfig,
    cold_start_examples,
    completion_only_trainer,
    format_warmup_examples,
    render_examples,
    train_supervised,
)
from embodied_r.training.traces import TRACE_TEMPLATES, reasoning_trace, reasoning_trace_examples
from embodied_r.vocabulary import TASK_CATEGORIES


def row(i: int, category: str = "landmark_position", letters: str = "ABCD", solution: str = "B") -> TrainingRow:
    texts = ["to the left", "ahead", "behind", "ahead-right"][: len(letters)]
    question = "Where is the chair?\n" + "\n".join(f"{ch}. {t}" for ch, t in zip(letters, texts, strict=True))
    return TrainingRow(
        question_id=f"q{i}", prompt=[{"role": "user", "content": f"Frame 0: a chair. {question}"}],
        solution=solution, question=question, choices=list(letters), category=category, data_source="synthetic",
        scene_name="s", split="train", prompt_tokens=20,
    )  # fmt: skip


def test_paper_recipe_has_no_cold_start_and_no_sft_baseline():
    assert ColdStartConfig().enabled is False and SFTConfig().enabled is False


def test_a_batch_of_partial_micro_batches_fails_at_load_naming_the_key_and_a_fix(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("cold_start:\n  enabled: true\n  batch_size: 6\n")
    with pytest.raises(ParamsError, match=r"cold_start.*batch_size 6 is not a multiple of micro_batch_size 4.*8"):
        load_params(params)
    assert ColdStartConfig(batch_size=2).batch_geometry() == (2, 1)  # smaller than a micro batch: one pass
    assert SFTConfig(batch_size=8, micro_batch_size=2).batch_geometry() == (2, 4)


def test_warmup_letters_are_uniform_random_and_never_the_answer_signal():
    rows = [row(i, letters="ABCD"[: 2 + i % 3]) for i in range(30)]
    examples = format_warmup_examples(rows, n=3000, seed=1, letters="random")
    assert len(examples) == 3000
    by_row = {r.question_id: r for r in rows}
    letters = Counter()
    fmt = make_format_reward()
    for ex in examples:
        letter = extract_answer(ex["completion"], by_row[ex["question_id"]].choices)
        assert letter in by_row[ex["question_id"]].choices
        assert fmt.score(ex["completion"]) == 1.0, "the completion is exactly the output contract"
        assert NEUTRAL_THINK in ex["completion"]
        letters[(len(by_row[ex["question_id"]].choices), letter)] += 1
    four = [letters[(4, ch)] for ch in "ABCD"]
    assert max(four) / min(four) < 1.3, four  # uniform over the row's choices, whatever the answer
    correct = sum(extract_answer(ex["completion"], ["A", "B", "C", "D"]) == "B" for ex in examples)
    assert 0.2 < correct / len(examples) < 0.5, "the right answer is no more frequent than chance"
    assert format_warmup_examples(rows, n=3000, seed=1, letters="random") == examples, "deterministic for a seed"
    assert format_warmup_examples(rows, n=3000, seed=2, letters="random") != examples


def test_balanced_warmup_letters_are_even_in_every_step_and_trained_in_that_order(tiny_lm, tmp_path):
    """letters=balanced: each block of a step's size holds every letter equally often, and the trainer takes the
    examples in the order given (a shuffling sampler would undo the per-step balance)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from embodied_r.training.supervised import cold_start_examples, sft_arguments

    rows = [r.model_copy(update={"prompt": [{"role": "user", "content": f"Video {r.question_id}. {r.question}"}]})
            for r in (row(i) for i in range(13))]  # fmt: skip
    cfg = ColdStartConfig(enabled=True, examples=64, batch_size=8, micro_batch_size=4, letters="balanced")
    examples = cold_start_examples(rows, cfg)
    letters = [extract_answer(ex["completion"], list("ABCD")) for ex in examples]
    for start in range(0, 64, 8):
        assert Counter(letters[start : start + 8]) == dict.fromkeys("ABCD", 2), letters[start : start + 8]
    random_letters = [extract_answer(ex["completion"], list("ABCD")) for ex in
                      cold_start_examples(rows, cfg.model_copy(update={"letters": "random"}))]  # fmt: skip
    assert any(Counter(random_letters[s : s + 8]) != dict.fromkeys("ABCD", 2) for s in range(0, 64, 8))
    mixed = [row(i, letters="ABC" if i % 2 else "ABCD") for i in range(10)]
    choices = {r.question_id: r.choices for r in mixed}
    for ex in format_warmup_examples(mixed, n=40, seed=0, letters="balanced"):
        assert extract_answer(ex["completion"], list("ABCD")) in choices[ex["question_id"]]

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    rendered = render_examples(examples, tokenizer, False)
    for config, in_order in ((cfg, True), (cfg.model_copy(update={"letters": "random"}), False)):
        args = sft_arguments(config, tmp_path, max_length=512)
        model = AutoModelForCausalLM.from_pretrained(tiny_lm, dtype=torch.float32)
        trainer = completion_only_trainer()(
            model=model, args=args, train_dataset=Dataset.from_list(rendered), processing_class=tokenizer
        )
        seen = [tokenizer.decode(ids, skip_special_tokens=True)
                for batch in trainer.get_train_dataloader() for ids in batch["input_ids"]]  # fmt: skip
        # each decoded example as (question id, letter): the order the trainer takes them in
        order = [(text.split("Video ")[1].split(".")[0], text.split("<answer>")[-1][0]) for text in seen]
        given = [(ex["question_id"], letter) for ex, letter in zip(examples, letters, strict=True)]
        assert sorted(order) == sorted(given)
        assert (order == given) is in_order, order[:8]


def test_every_option_warmup_answers_each_question_every_way_in_a_row():
    """letters=every_option: a question's examples come together, one per option, so its answers are uniform per
    question (balanced letters are uniform only over the step); the option text is each letter's own."""
    rows = [row(i, letters="ABC" if i % 2 else "ABCD") for i in range(10)]
    by_id = {r.question_id: r for r in rows}
    examples = format_warmup_examples(rows, n=35, seed=3, letters="every_option", answer="option_text")
    assert len(examples) == 35
    runs: list[list[dict]] = []
    for ex in examples:
        if runs and runs[-1][0]["question_id"] == ex["question_id"]:
            runs[-1].append(ex)
        else:
            runs.append([ex])
    assert len({run[0]["question_id"] for run in runs}) == len(runs), "each question's examples are consecutive"
    for run in runs[:-1]:  # the last may be cut by n
        r = by_id[run[0]["question_id"]]
        answered = sorted(extract_answer(ex["completion"], r.choices, "answer_text", question=r.question) for ex in run)
        assert answered == r.choices

    def letter(ex: dict) -> str | None:
        return extract_answer(ex["completion"], list("ABCD"), "answer_text", question=by_id[ex["question_id"]].question)

    orders = {tuple(letter(ex) for ex in run) for run in runs if len(run) == 4}
    assert len(orders) > 1 and None not in {a for o in orders for a in o}, "the options' order is drawn per question"
    assert ColdStartConfig(letters="every_option").in_order(), "trained in the order given, as balanced"


def test_numeric_rows_cannot_be_warmed_up():
    numeric = row(0).model_copy(update={"choices": []})
    with pytest.raises(ValueError, match="multiple-choice"):
        format_warmup_examples([numeric], n=1, seed=0)


def test_prefilled_prompts_end_inside_the_reasoning(tiny_lm):
    from embodied_r.training.config import GrpoTrainingConfig
    from embodied_r.training.grpo import load_tokenizer

    tokenizer = load_tokenizer(tiny_lm, GrpoTrainingConfig(think_prefill=True))
    ex = format_warmup_examples([row(0)], n=1, seed=0)
    rendered = render_examples(ex, tokenizer, think_prefill=True)[0]
    assert rendered["prompt"].endswith("<|im_start|>assistant\n<think>")
    assert rendered["completion"].startswith(NEUTRAL_THINK) and "<think>" not in rendered["completion"]
    with pytest.raises(ValueError, match="must start with <think>"):
        render_examples([{**ex[0], "completion": "B"}], tokenizer, think_prefill=True)


@pytest.mark.parametrize("shared_system", [False, True], ids=["same-prompts", "different-prompts"])
def test_completion_only_loss_equals_trls_loss(tiny_lm, tmp_path, monkeypatch, shared_system):
    """The loss computed from completion positions only, with the rows' common start run once, is TRL's token-mean
    NLL over the same batch, with the same gradients."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig as TrlSFTConfig
    from trl import SFTTrainer

    from embodied_r.training import supervised
    from embodied_r.training.common_prefix import hidden_after_common_prefix

    rows = [row(i) for i in range(4)]
    if shared_system:  # a common system prompt, then prompts of different lengths
        rows = [r.model_copy(update={"prompt": [{"role": "system", "content": "Think, then answer. " * 4},
                                                {"role": "user", "content": f"Frame 0: {'a chair. ' * i}Where?"}]})
                for i, r in enumerate(rows, start=1)]  # fmt: skip
    shared = []
    monkeypatch.setattr(supervised, "hidden_after_common_prefix", lambda *a: shared.append(a[3]) or
                        hidden_after_common_prefix(*a))  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    examples = render_examples(format_warmup_examples(rows, n=4, seed=0), tokenizer, False)
    args = TrlSFTConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, bf16=False, max_length=None,
                        per_device_train_batch_size=4, activation_checkpointing=False)  # fmt: skip
    losses, grads = [], []
    for cls in (SFTTrainer, completion_only_trainer()):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_lm, dtype=torch.float32)
        trainer = cls(model=model, args=args, train_dataset=Dataset.from_list(examples), processing_class=tokenizer)
        batch = next(iter(trainer.get_train_dataloader()))
        loss = trainer.compute_loss(model, dict(batch))
        loss.backward()
        losses.append(loss.item())
        grads.append(model.model.layers[0].self_attn.q_proj.weight.grad.clone())
    assert len(shared) == 1 and shared[0] >= 16  # the common start was shared, TRL's path does not share
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-3, atol=1e-6)


@pytest.mark.slow
def test_cold_start_trains_saves_and_resumes(tiny_lm, tmp_path):
    rows = [row(i) for i in range(8)]
    cfg = ColdStartConfig(enabled=True, max_steps=2, batch_size=4, micro_batch_size=2, precision="fp32", save_steps=1)
    outcome = train_supervised(tiny_lm, format_warmup_examples(rows, n=8, seed=0), tmp_path, cfg, purpose="cold")
    final = Path(outcome.final_model_path)
    assert outcome.global_step == 2 and len(outcome.losses) == 2
    record = json.loads((final / SUPERVISED_TRAINING_FILE).read_text())
    assert record["think_prefill"] == "<think>" and record["purpose"] == "cold"
    assert (final / "chat_template.jinja").read_text().endswith("{% if add_generation_prompt %}<think>{% endif %}")

    # Longer run, same folder: it resumes from checkpoint-2 instead of starting over.
    more = cfg.model_copy(update={"max_steps": 3})
    again = train_supervised(tiny_lm, format_warmup_examples(rows, n=8, seed=0), tmp_path, more, purpose="cold")
    assert again.resumed_from is not None and again.resumed_from.endswith("checkpoint-2")
    assert again.global_step == 3


def test_traces_end_in_the_correct_option_for_every_category():
    assert set(TRACE_TEMPLATES) == set(TASK_CATEGORIES)
    fmt = make_format_reward()
    for category in TASK_CATEGORIES:
        for solution in "ABCD":
            r = row(0, category=category, solution=solution)
            trace = reasoning_trace(r)
            assert fmt.score(trace) == 1.0
            assert extract_answer(trace, r.choices) == solution
            assert parse_choices(r.question)[solution] in trace, "the reasoning names the correct option"
    with pytest.raises(ValueError, match="not among the choices"):
        reasoning_trace(row(0, solution="E", letters="ABCD").model_copy(update={"solution": "E"}))
    assert [e["target"] for e in reasoning_trace_examples([row(1, solution="C")])] == ["C"]


def test_option_text_answers_hold_the_drawn_or_correct_options_text():
    rows = [row(i) for i in range(8)]
    warm = format_warmup_examples(rows, n=8, seed=0, answer="option_text")
    by_id = {r.question_id: r for r in rows}
    for example in warm:
        r = by_id[example["question_id"]]
        content = example["completion"].rsplit("<answer>", 1)[1].removesuffix("</answer>")
        assert content in parse_choices(r.question).values(), "a whole option text, not a letter"
        assert extract_answer(example["completion"], r.choices, "answer_text", question=r.question) is not None
    # Balanced letters still: the texts drawn cover every option twice in 8 examples.
    assert sorted(Counter(e["completion"].rsplit("<answer>", 1)[1] for e in warm).values()) == [2, 2, 2, 2]
    configured = cold_start_examples(
        rows, ColdStartConfig(enabled=True, examples=8, answer="option_text", letters="balanced")
    )
    assert [e["completion"] for e in configured] == [e["completion"] for e in warm]  # the params reach the examples
    r = row(0, solution="C")
    trace = reasoning_trace(r, answer="option_text")
    assert trace.endswith("<answer>behind</answer>") and make_format_reward().score(trace) == 1.0
    assert extract_answer(trace, r.choices, "answer_text", question=r.question) == "C"
    assert extract_answer(reasoning_trace(r), r.choices) == "C"  # the default stays the letter


def test_option_text_answers_need_a_reader_of_option_texts(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("cold_start:\n  enabled: true\n  answer: option_text\n")
    with pytest.raises(ParamsError, match=r"cold_start.answer is option_text.*accuracy_mode: answer_text"):
        load_params(params)
    params.write_text(params.read_text() + "rewards:\n  accuracy_mode: answer_text\n")
    assert load_params(params).cold_start.answer == "option_text"


def test_examples_come_from_the_training_rows_contract(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(row(i).model_dump()) + "\n" for i in range(3)))
    assert len(reasoning_trace_examples(read_training_rows(path))) == 3
