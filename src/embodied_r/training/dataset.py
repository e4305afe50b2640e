"""The training set: described samples → :class:`TrainingRow` files per split, with every exclusion reported.

A sample becomes a row only if

* the data checks upstream passed (a training set is never built from data that failed its blocking checks);
* it is multiple-choice (numeric questions only with ``include_numeric``; the paper drops them);
* its category is selected (default: the paper's eight, :data:`embodied_r.vocabulary.TASK_CATEGORIES`);
* it has a split;
* its chat-templated prompt fits ``max_prompt_tokens`` in the LM's own tokens (paper: 6144, completions 2048).
  Prompts are never truncated: a long one is excluded with its token count;
* optionally (``difficulty_filter``, not in the paper), a TRAIN question the base LM answers neither always nor
  never correctly in ``difficulty_k`` samples — an all-right or all-wrong group gives GRPO zero advantage.

Everything left out is in ``exclusions.jsonl`` with its reason; ``summary.json`` counts rows and exclusions per
reason, category and split. The files are byte-deterministic (sorted keys and rows, no timestamps).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from embodied_r.answers import AnswerMode
from embodied_r.config import TrainingSetConfig
from embodied_r.data.records import read_jsonl_models, write_json, write_jsonl
from embodied_r.perception.lm_prompt import build_messages
from embodied_r.perception.prompts import question_for_prompt
from embodied_r.perception.records import DescribedSample
from embodied_r.training.rows import TrainingRow

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")

#: Exclusion reasons, in the order they are tested (a sample gets the first that applies).
REASONS: tuple[str, ...] = (
    "numeric",
    "category_not_selected",
    "answer_not_in_choices",
    "no_split",
    "prompt_too_long",
    "too_easy",
    "too_hard",
)

#: ``answer_fn(rows, k)`` → for each row, the letters extracted from ``k`` sampled completions (``None`` if none).
AnswerFn = Callable[[Sequence[TrainingRow], int], list[list[str | None]]]


class TrainingSetBuild(BaseModel):
    """Rows per split (each sorted by question id), exclusions (sorted by question id) and counts."""

    model_config = ConfigDict(extra="forbid")

    rows_by_split: dict[str, list[TrainingRow]]
    exclusions: list[dict[str, str]]
    counts: dict[str, Any]


class FailedChecksError(RuntimeError):
    """The data feeding the training set failed blocking checks."""


def count_prompt_tokens(tokenizer: Any, messages: list[dict[str, str]]) -> int:
    """Length in tokens of the chat-templated prompt, generation prompt included (what the LM actually reads).

    transformers 5 returns a ``BatchEncoding`` from ``apply_chat_template(..., tokenize=True)``; older versions a
    list of ids. Both are handled.
    """
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(encoded, Mapping):
        encoded = encoded["input_ids"]
    if hasattr(encoded, "tolist"):
        encoded = encoded.tolist()
    if encoded and isinstance(encoded[0], list):  # a batch of one
        encoded = encoded[0]
    return len(encoded)


def _exclusion(sample: DescribedSample, reason: str, detail: str = "") -> dict[str, str]:
    return {
        "question_id": sample.question_id,
        "reason": reason,
        "detail": detail,
        "category": sample.category,
        "split": sample.split or "",
    }


def _first_exclusion(sample: DescribedSample, cfg: TrainingSetConfig) -> dict[str, str] | None:
    """The first rule (before tokenization) that excludes ``sample``, if any."""
    numeric = not sample.choices
    if numeric and not cfg.include_numeric:
        return _exclusion(sample, "numeric", "numeric questions are dropped (include_numeric=false)")
    if sample.category not in cfg.categories and sample.split != "test":
        # Only trained rows are filtered: the test split keeps every ingested category (data.categories), so a
        # category held out of training is evaluated out of distribution.
        return _exclusion(sample, "category_not_selected", f"category {sample.category!r} is not in categories")
    if not numeric and sample.answer not in sample.choices:
        return _exclusion(sample, "answer_not_in_choices", f"answer {sample.answer!r} not in {sample.choices}")
    if sample.split is None:
        return _exclusion(sample, "no_split", "the sample has no split")
    return None


def build_training_set(
    samples: Sequence[DescribedSample],
    tokenizer: Any,
    cfg: TrainingSetConfig,
    *,
    failed_checks: Sequence[str] = (),
    answer_fn: AnswerFn | None = None,
) -> TrainingSetBuild:
    """Select, tokenize-check and convert described samples into training rows per split.

    ``failed_checks`` names the blocking check suites that failed upstream; if any did, nothing is built.
    ``answer_fn`` is required when ``cfg.difficulty_filter`` is on (see :func:`hf_answer_fn`).
    """
    if failed_checks:
        raise FailedChecksError(
            f"refusing to build the training set: blocking data checks failed: {', '.join(sorted(failed_checks))}"
        )
    if cfg.difficulty_filter and answer_fn is None:
        raise ValueError("difficulty_filter is on but no answer_fn was given (e.g. hf_answer_fn(base_lm.path))")
    ids = Counter(s.question_id for s in samples)
    duplicates = sorted(q for q, n in ids.items() if n > 1)
    if duplicates:
        raise ValueError(f"duplicate question ids in the described samples: {duplicates[:10]}")
    model_max = getattr(tokenizer, "model_max_length", None)
    budget = cfg.max_prompt_tokens + cfg.max_completion_tokens
    if isinstance(model_max, int) and model_max < 10**8 and budget > model_max:
        log.warning("max_prompt_tokens + max_completion_tokens = %d exceeds the LM's context %d", budget, model_max)

    exclusions: list[dict[str, str]] = []
    rows: list[TrainingRow] = []
    kept: list[DescribedSample] = []
    for sample in sorted(samples, key=lambda s: s.question_id):
        excluded = _first_exclusion(sample, cfg)
        if excluded is not None:
            exclusions.append(excluded)
        else:
            kept.append(sample)
    for sample in kept:
        messages = build_messages(sample, system_prompt=cfg.system_prompt)
        n_tokens = count_prompt_tokens(tokenizer, messages)
        if n_tokens > cfg.max_prompt_tokens:
            exclusions.append(_too_long(sample, n_tokens, cfg))
            continue
        rows.append(
            TrainingRow(
                question_id=sample.question_id,
                prompt=messages,
                solution=sample.answer,
                question=question_for_prompt(sample.question),
                choices=list(sample.choices),
                category=sample.category,
                data_source=sample.data_source,
                scene_name=sample.scene_name,
                split=sample.split,
                prompt_tokens=n_tokens,
            )
        )

    if cfg.difficulty_filter:
        rows, dropped = _difficulty_filter(rows, answer_fn, cfg.difficulty_k, {s.question_id: s for s in samples})
        exclusions.extend(dropped)

    rows_by_split = {split: [r for r in rows if r.split == split] for split in SPLITS}
    exclusions.sort(key=lambda e: (e["question_id"], e["reason"]))
    counts = _counts(rows_by_split, exclusions, cfg)
    log.info(
        "training set: %s rows, %d excluded %s",
        {split: len(r) for split, r in rows_by_split.items()},
        len(exclusions),
        counts["excluded_by_reason"],
    )
    return TrainingSetBuild(rows_by_split=rows_by_split, exclusions=exclusions, counts=counts)


def _too_long(sample: DescribedSample, n_tokens: int, cfg: TrainingSetConfig) -> dict[str, str]:
    return _exclusion(
        sample, "prompt_too_long", f"{n_tokens} prompt tokens > max_prompt_tokens {cfg.max_prompt_tokens}"
    )


def _difficulty_filter(
    rows: list[TrainingRow], answer_fn: AnswerFn, k: int, samples: Mapping[str, DescribedSample]
) -> tuple[list[TrainingRow], list[dict[str, str]]]:
    """Drop train rows answered correctly in all or none of ``k`` samples; other splits are untouched."""
    train = [r for r in rows if r.split == "train"]
    if not train:
        return rows, []
    answers = answer_fn(train, k)
    if len(answers) != len(train) or any(len(a) != k for a in answers):
        raise ValueError(f"answer_fn must return {k} answers for each of the {len(train)} train rows")
    dropped: dict[str, dict[str, str]] = {}
    for row, letters in zip(train, answers, strict=True):
        correct = sum(letter == row.solution for letter in letters)
        if correct in (0, k):
            reason = "too_easy" if correct == k else "too_hard"
            dropped[row.question_id] = _exclusion(
                samples[row.question_id], reason, f"{correct}/{k} sampled answers correct"
            )
    log.info("difficulty filter: %d of %d train questions dropped", len(dropped), len(train))
    return [r for r in rows if r.question_id not in dropped], list(dropped.values())


def _counts(
    rows_by_split: Mapping[str, list[TrainingRow]], exclusions: list[dict[str, str]], cfg: TrainingSetConfig
) -> dict[str, Any]:
    """Rows per split and per category × split; correct letters per split; exclusions per reason and per category;
    prompt-length stats."""
    rows = [r for split in SPLITS for r in rows_by_split[split]]
    per_category: dict[str, dict[str, int]] = {}
    for row in rows:
        per_category.setdefault(row.category, dict.fromkeys(SPLITS, 0))[row.split] += 1
    excluded_by_category: dict[str, dict[str, int]] = {}
    for exc in exclusions:
        bucket = excluded_by_category.setdefault(exc["category"], {})
        bucket[exc["reason"]] = bucket.get(exc["reason"], 0) + 1
    lengths = sorted(r.prompt_tokens for r in rows)
    return {
        "rows": len(rows),
        "rows_by_split": {split: len(rows_by_split[split]) for split in SPLITS},
        "rows_by_category": per_category,
        "answer_letters": {
            split: dict(sorted(Counter(r.solution for r in rows_by_split[split] if r.choices).items()))
            for split in SPLITS
        },
        "excluded": len(exclusions),
        "excluded_by_reason": dict(sorted(Counter(e["reason"] for e in exclusions).items())),
        "excluded_by_category": excluded_by_category,
        "prompt_tokens": {
            "max": lengths[-1] if lengths else 0,
            "median": lengths[len(lengths) // 2] if lengths else 0,
            "limit": cfg.max_prompt_tokens,
        },
        "config": cfg.model_dump(mode="json"),
    }


def write_training_set(build: TrainingSetBuild, out_dir: Path) -> dict[str, Path]:
    """Write ``train/val/test.jsonl``, ``exclusions.jsonl`` and ``summary.json``; returns the paths by name."""
    out_dir = Path(out_dir)
    paths = {split: out_dir / f"{split}.jsonl" for split in SPLITS}
    for split, path in paths.items():
        write_jsonl(path, sorted(build.rows_by_split.get(split, []), key=lambda r: r.question_id))
    paths["exclusions"] = out_dir / "exclusions.jsonl"
    write_jsonl(paths["exclusions"], build.exclusions)
    paths["summary"] = out_dir / "summary.json"
    write_json(paths["summary"], build.counts)
    return paths


def read_training_rows(path: Path) -> list[TrainingRow]:
    """Read a split file written by :func:`write_training_set`."""
    return read_jsonl_models(path, TrainingRow, "training row")


# --- the default answer_fn: sample the base LM with transformers -------------------------------------------------


def hf_answer_fn(
    model_path: Path,
    *,
    temperature: float = 1.0,
    max_new_tokens: int = 2048,
    seed: int = 0,
    answer_mode: AnswerMode = "answer_tag",
    precision: Literal["auto", "bf16", "fp32"] = "auto",
    trust_remote_code: bool = False,
) -> AnswerFn:
    """An ``answer_fn`` sampling ``k`` completions per prompt from a Hugging Face model folder.

    The model is loaded on the first call (GPU if available; ``precision`` as ``grpo.precision``) and kept. Each
    prompt's ``k`` completions are sampled as GRPO samples a group
    (:func:`embodied_r.models.generation.sample_answer_groups`: plain temperature sampling, the prompt computed
    once) and read with the project's :func:`embodied_r.answers.extract_answer` (``<answer>`` by default, as in
    evaluation). Sampling is seeded, so the filter is reproducible on the same hardware and library versions.
    """
    loaded: list[tuple[Any, Any]] = []

    def answer(rows: Sequence[TrainingRow], k: int) -> list[list[str | None]]:
        from embodied_r.models.generation import load_for_generation, sample_answer_groups

        if not loaded:
            loaded.append(load_for_generation(model_path, precision=precision, trust_remote_code=trust_remote_code))
        model, tokenizer = loaded[0]

        def progress(done: int, total: int) -> None:
            if done % 50 == 0 or done == total:
                log.info("difficulty filter: sampled %d/%d questions", done, total)

        return sample_answer_groups(
            model, tokenizer, rows, k, temperature=temperature, max_new_tokens=max_new_tokens,
            answer_mode=answer_mode, seed=seed, progress=progress,
        )  # fmt: skip

    return answer
