"""The training set: selection rules, token budget, row contract, exclusions report, determinism, difficulty filter.

The tokenizer is built offline from the ``tokenizers`` library: a word-level vocabulary where every word is
unknown, so a prompt's length is its number of words and punctuation marks, plus a ChatML chat template.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from pydantic import ValidationError
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from embodied_r.perception.lm_prompt import build_messages
from embodied_r.perception.prompts import PROMPT_VERSION
from embodied_r.perception.records import DescribedSample, FrameDescription
from embodied_r.training.dataset import (
    FailedChecksError,
    TrainingSetConfig,
    build_training_set,
    count_prompt_tokens,
    hf_answer_fn,
    read_training_rows,
    write_training_set,
)
from embodied_r.training.rows import TrainingRow
from embodied_r.vocabulary import TASK_CATEGORIES

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    """A tiny offline tokenizer with a chat template: one token per word or punctuation mark."""
    vocab = {"[UNK]": 0, "<|im_start|>": 1, "<|im_end|>": 2}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        chat_template=CHATML,
    )


def make_sample(
    qid: str,
    *,
    category: str = "object_rel_direction",
    split: str | None = "train",
    answer: str = "A",
    choices: Sequence[str] = ("A", "B", "C"),
    observation: str = "A red chair is ahead-left.",
    scene: str = "scene-1",
) -> DescribedSample:
    """A described sample with two key frames."""
    lettered = "\n".join(f"{c}. option {c.lower()}" for c in choices)
    return DescribedSample(
        question_id=qid,
        video_id=f"video-{qid}",
        scene_name=scene,
        category=category,
        split=split,
        question=f"Question: Where is the door?\n{lettered}" if choices else "Question: How many chairs are there?",
        answer=answer,
        choices=list(choices),
        data_source="embedded",
        keyframe_indices=[0, 10],
        frames=[
            FrameDescription(index=0, observation=observation, raw=observation),
            FrameDescription(index=10, action="rotate left", observation="A blue lamp appears ahead.", raw="..."),
        ],
        mode="per_question",
        backend="oracle",
        model="oracle",
        prompt_version=PROMPT_VERSION,
    )


def mixed_samples() -> list[DescribedSample]:
    """Samples hitting every rule at least once, given in unsorted order."""
    return [
        make_sample("q09", split="test", category="route_planning", answer="B"),
        make_sample("q01", split="train"),
        make_sample("q02", split="val", category="landmark_position", answer="C"),
        make_sample("q03", split="train", category="object_counting", answer="4", choices=()),
        make_sample("q04", split="train", category="not_a_task"),
        make_sample("q05", split=None),
        make_sample("q06", split="train", observation="word " * 400),
        make_sample("q07", split="train", category="counterfactual", answer="D", choices=("A", "B", "C", "D")),
        make_sample("q08", split="test", category="action_generation"),
    ]


def exclusion_reasons(build) -> dict[str, str]:
    return {e["question_id"]: e["reason"] for e in build.exclusions}


def test_default_config_is_the_papers() -> None:
    cfg = TrainingSetConfig()
    assert cfg.categories == TASK_CATEGORIES
    assert (cfg.include_numeric, cfg.max_prompt_tokens, cfg.max_completion_tokens) == (False, 6144, 2048)
    assert (cfg.difficulty_filter, cfg.system_prompt) == (False, True)


def test_config_rejects_unknown_fields_and_categories() -> None:
    with pytest.raises(ValidationError, match="extra"):
        TrainingSetConfig(max_tokens=10)
    with pytest.raises(ValidationError, match="unknown task categories"):
        TrainingSetConfig(categories=["object_rel_direction", "typo_category"])
    with pytest.raises(ValidationError):
        TrainingSetConfig(categories=[])


def test_failed_checks_block_the_build_and_are_named(tokenizer) -> None:
    with pytest.raises(FailedChecksError, match=r"records_suite.*split_suite|split_suite.*records_suite"):
        build_training_set(
            mixed_samples(), tokenizer, TrainingSetConfig(), failed_checks=["split_suite", "records_suite"]
        )


def test_count_prompt_tokens_measures_the_templated_prompt(tokenizer) -> None:
    messages = [{"role": "user", "content": "one two three"}]
    # <|im_start|> user one two three <|im_end|> <|im_start|> assistant  (transformers 5 returns a BatchEncoding)
    assert count_prompt_tokens(tokenizer, messages) == 8


def test_rules_and_exclusion_reasons(tokenizer) -> None:
    cfg = TrainingSetConfig(max_prompt_tokens=400)
    build = build_training_set(mixed_samples(), tokenizer, cfg)
    assert exclusion_reasons(build) == {
        "q03": "numeric",
        "q04": "category_not_selected",
        "q05": "no_split",
        "q06": "prompt_too_long",
    }
    assert [r.question_id for r in build.rows_by_split["train"]] == ["q01", "q07"]
    assert [r.question_id for r in build.rows_by_split["val"]] == ["q02"]
    assert [r.question_id for r in build.rows_by_split["test"]] == ["q08", "q09"]
    counts = build.counts
    assert counts["excluded_by_reason"] == {
        "category_not_selected": 1,
        "no_split": 1,
        "numeric": 1,
        "prompt_too_long": 1,
    }
    assert counts["rows_by_split"] == {"train": 2, "val": 1, "test": 2}
    assert counts["rows_by_category"]["object_rel_direction"] == {"train": 1, "val": 0, "test": 0}
    assert counts["excluded_by_category"]["object_counting"] == {"numeric": 1}


def test_category_filter(tokenizer) -> None:
    cfg = TrainingSetConfig(categories=["route_planning", "landmark_position"])
    build = build_training_set(mixed_samples(), tokenizer, cfg)
    kept = sorted(r.question_id for rows in build.rows_by_split.values() for r in rows)
    assert kept == ["q02", "q08", "q09"], "the test split keeps held-out categories (evaluated out of distribution)"
    assert exclusion_reasons(build)["q01"] == "category_not_selected"
    assert "q08" in {r.question_id for r in build.rows_by_split["test"]}


def test_numeric_questions_only_when_allowed(tokenizer) -> None:
    samples = [make_sample("n1", category="object_counting", answer="4", choices=())]
    assert exclusion_reasons(build_training_set(samples, tokenizer, TrainingSetConfig())) == {"n1": "numeric"}
    cfg = TrainingSetConfig(include_numeric=True, categories=[*TASK_CATEGORIES, "object_counting"])
    (row,) = build_training_set(samples, tokenizer, cfg).rows_by_split["train"]
    assert (row.solution, row.choices) == ("4", [])


def test_too_long_prompt_is_excluded_with_its_token_count_never_truncated(tokenizer) -> None:
    long_sample = make_sample("long", observation="word " * 400)
    n_tokens = count_prompt_tokens(tokenizer, build_messages(long_sample))
    build = build_training_set([long_sample], tokenizer, TrainingSetConfig(max_prompt_tokens=n_tokens - 1))
    assert not any(build.rows_by_split.values())
    (exc,) = build.exclusions
    assert exc["reason"] == "prompt_too_long"
    assert str(n_tokens) in exc["detail"]
    # At exactly the limit it is kept whole: the prompt is the full build_messages output.
    (row,) = build_training_set([long_sample], tokenizer, TrainingSetConfig(max_prompt_tokens=n_tokens)).rows_by_split[
        "train"
    ]
    assert row.prompt_tokens == n_tokens
    assert row.prompt == build_messages(long_sample)


def test_rows_follow_the_training_row_contract(tokenizer) -> None:
    sample = make_sample("q1", category="counterfactual", answer="D", choices=("A", "B", "C", "D"), split="val")
    (row,) = build_training_set([sample], tokenizer, TrainingSetConfig()).rows_by_split["val"]
    assert isinstance(row, TrainingRow)
    assert row.prompt == build_messages(sample, system_prompt=True)
    assert [m["role"] for m in row.prompt] == ["system", "user"]
    assert row.solution == "D"
    assert row.choices == ["A", "B", "C", "D"]
    assert row.question == "Where is the door?\nA. option a\nB. option b\nC. option c\nD. option d"
    assert "Frame 0" not in row.question  # the judge's question holds no video text
    assert (row.category, row.data_source, row.scene_name, row.split) == (
        "counterfactual",
        "embedded",
        "scene-1",
        "val",
    )
    assert row.prompt_tokens == count_prompt_tokens(tokenizer, row.prompt)
    assert TrainingRow.model_validate_json(row.model_dump_json()) == row

    no_system = build_training_set([sample], tokenizer, TrainingSetConfig(system_prompt=False))
    assert [m["role"] for m in no_system.rows_by_split["val"][0].prompt] == ["user"]


def test_files_are_byte_deterministic_and_readable(tokenizer, tmp_path: Path) -> None:
    cfg = TrainingSetConfig(max_prompt_tokens=400)
    samples = mixed_samples()
    paths_a = write_training_set(build_training_set(samples, tokenizer, cfg), tmp_path / "a")
    paths_b = write_training_set(build_training_set(list(reversed(samples)), tokenizer, cfg), tmp_path / "b")
    assert sorted(p.name for p in paths_a.values()) == [
        "exclusions.jsonl",
        "summary.json",
        "test.jsonl",
        "train.jsonl",
        "val.jsonl",
    ]
    for name, path in paths_a.items():
        assert path.read_bytes() == paths_b[name].read_bytes(), name
    assert [r.question_id for r in read_training_rows(paths_a["train"])] == ["q01", "q07"]
    exclusions = [json.loads(line) for line in paths_a["exclusions"].read_text().splitlines()]
    assert [e["question_id"] for e in exclusions] == ["q03", "q04", "q05", "q06"]
    assert {"question_id", "reason", "detail"} <= set(exclusions[0])
    summary = json.loads(paths_a["summary"].read_text())
    assert summary["rows"] == 5 and summary["excluded"] == 4


def test_duplicate_question_ids_are_an_error(tokenizer) -> None:
    with pytest.raises(ValueError, match="duplicate"):
        build_training_set([make_sample("q1"), make_sample("q1")], tokenizer, TrainingSetConfig())


def test_difficulty_filter_drops_all_right_and_all_wrong_train_questions_only(tokenizer) -> None:
    samples = [
        make_sample("easy", answer="A"),
        make_sample("hard", answer="B"),
        make_sample("mixed", answer="C"),
        make_sample("unparsed", answer="A"),
        make_sample("val-easy", answer="A", split="val"),
        make_sample("test-hard", answer="B", split="test"),
    ]
    scripted = {
        "easy": ["A", "A", "A"],
        "hard": ["A", "C", None],
        "mixed": ["C", "A", "C"],
        "unparsed": [None, None, None],
    }
    seen: list[tuple[list[str], int]] = []

    def fake_answer_fn(rows: Sequence[TrainingRow], k: int) -> list[list[str | None]]:
        seen.append(([r.question_id for r in rows], k))
        return [scripted[r.question_id] for r in rows]

    cfg = TrainingSetConfig(difficulty_filter=True, difficulty_k=3)
    build = build_training_set(samples, tokenizer, cfg, answer_fn=fake_answer_fn)
    assert seen == [(["easy", "hard", "mixed", "unparsed"], 3)]  # only train rows are sampled
    assert exclusion_reasons(build) == {"easy": "too_easy", "hard": "too_hard", "unparsed": "too_hard"}
    assert next(e for e in build.exclusions if e["question_id"] == "easy")["detail"] == "3/3 sampled answers correct"
    assert [r.question_id for r in build.rows_by_split["train"]] == ["mixed"]
    assert [r.question_id for r in build.rows_by_split["val"]] == ["val-easy"]
    assert [r.question_id for r in build.rows_by_split["test"]] == ["test-hard"]


def test_difficulty_filter_is_off_by_default_and_needs_an_answer_fn(tokenizer) -> None:
    def failing_answer_fn(rows, k):
        raise AssertionError("must not be called when the filter is off")

    build = build_training_set([make_sample("q1")], tokenizer, TrainingSetConfig(), answer_fn=failing_answer_fn)
    assert len(build.rows_by_split["train"]) == 1
    with pytest.raises(ValueError, match="answer_fn"):
        build_training_set([make_sample("q1")], tokenizer, TrainingSetConfig(difficulty_filter=True))


def test_difficulty_filter_checks_the_answer_fn_shape(tokenizer) -> None:
    cfg = TrainingSetConfig(difficulty_filter=True, difficulty_k=2)
    with pytest.raises(ValueError, match="2 answers"):
        build_training_set([make_sample("q1")], tokenizer, cfg, answer_fn=lambda rows, k: [["A"] for _ in rows])


def test_hf_answer_fn_samples_k_answers_per_row(tokenizer, tiny_lm: Path, monkeypatch) -> None:
    """The default answer_fn on the tiny random LM (``embodied_r.models.tiny``): k answers per row (its answers are
    noise, so None)."""
    samples = [make_sample(f"q{i}", answer="A") for i in range(3)]
    rows = build_training_set(samples, tokenizer, TrainingSetConfig()).rows_by_split["train"]
    from embodied_r.models import generation

    loads = []
    real_load = generation.load_for_generation
    monkeypatch.setattr(generation, "load_for_generation", lambda *a, **kw: loads.append(a) or real_load(*a, **kw))
    answer_fn = hf_answer_fn(tiny_lm, max_new_tokens=3)
    assert answer_fn(rows, 2) == [[None, None]] * 3
    assert answer_fn(rows[:1], 4) == [[None] * 4]
    assert len(loads) == 1, "the model is loaded on the first call and kept"


def test_correct_letters_are_counted_per_split(tokenizer) -> None:
    samples = [make_sample(f"t{i:02d}", category="obj_appearance_order", answer="B", choices=tuple("ABCD"))
               for i in range(13)]  # fmt: skip
    samples += [
        make_sample("v1", category="obj_appearance_order", split="val", answer="B", choices=tuple("ABCD")),
        make_sample("x1", category="obj_appearance_order", split="test", answer="B", choices=tuple("ABCD")),
    ]
    given = build_training_set(samples, tokenizer, TrainingSetConfig())
    assert given.counts["answer_letters"] == {"train": {"B": 13}, "val": {"B": 1}, "test": {"B": 1}}
