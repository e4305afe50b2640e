"""Greedy evaluation of a local LM folder on TrainingRows, and think–answer consistency by a judge (reference §6).

:func:`generate_completions` decodes greedily (``do_sample=False``), batched with left padding, from the chat
template's generation prompt — exactly the prompt the model saw in training. :func:`evaluate_model` scores every
completion (:func:`embodied_r.evaluation.metrics.score_sample`), optionally asks a
:class:`~embodied_r.rewards.judges.ConsistencyJudge` whether the ``<think>`` text alone leads to the answer, and returns
an :class:`EvalResult` with the aggregate numbers and one record per question.

Think prefill. A model trained with ``think_prefill`` has a chat template ending in ``<think>`` and records it in
``grpo_training.json``; its completions lack the opening tag, so ``"<think>"`` is prepended before scoring
(``think_prefill="auto"``, the default, reads the file; a base model has none).

Consistency. For each completion with an extracted letter and a non-empty ``<think>``, the judge gets the question
(with its choices) and the think text; ``consistency_rate`` is the share of **verdicts** equal to the model's
letter. Failed or unparsable judge requests are counted (``consistency_judge_failures``,
``consistency_judge_unparsable``) and excluded from the rate, never scored 0; answered completions without a
``<think>`` block are counted apart (``consistency_no_think``). Unlike the consistency reward, wrong answers are
judged too: the question here is whether the reasoning supports the answer given, right or wrong.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from tqdm.auto import tqdm

from embodied_r.answers import AnswerMode
from embodied_r.evaluation.kept import KeptGeneration, append_kept, generations_path, read_kept
from embodied_r.evaluation.metrics import aggregate, paired_difference, score_sample
from embodied_r.rewards.judges import ConsistencyJudge, JudgeItem
from embodied_r.training.common_prefix import MIN_SHARED_TOKENS, common_prefix_length, generate_after_common_prefix
from embodied_r.training.rows import TrainingRow

log = logging.getLogger(__name__)

__all__ = [
    "EvalResult",
    "Generation",
    "compare",
    "consistency_summary",
    "evaluate_model",
    "generate_completions",
    "judge_consistency",
    "read_think_prefill",
]

#: Written next to a GRPO-trained model's weights (:mod:`embodied_r.training.grpo`).
GRPO_TRAINING_FILE = "grpo_training.json"
#: The records a training stage leaves next to the weights, newest stage first (GRPO runs after the cold start).
TRAINING_RECORDS = (GRPO_TRAINING_FILE, "supervised_training.json")


class Generation(BaseModel):
    """One greedy completion: its text, generated token count (through the first EOS), whether it hit the cap, and
    whether it was read back from a kept file rather than generated (``reused``)."""

    model_config = ConfigDict(frozen=True)

    text: str
    completion_tokens: int
    truncated: bool
    reused: bool = False


class EvalResult(BaseModel):
    """What :func:`evaluate_model` measured.

    ``aggregate``: the numbers of :func:`embodied_r.evaluation.metrics.aggregate` plus ``consistency_*`` when a
    judge ran and ``truncated_rate``. ``per_sample``: one :func:`score_sample` record per row, in row order, with
    ``judge_letter`` / ``consistent`` / ``truncated`` added. ``settings``: the generation settings used.
    """

    model_config = ConfigDict(frozen=True)

    aggregate: dict[str, Any]
    per_sample: list[dict[str, Any]]
    settings: dict[str, Any]

    def subset(self, categories: Collection[str]) -> EvalResult | None:
        """The same evaluation on the questions of ``categories`` only (``None`` when it has none of them).

        The aggregate is recomputed from those questions with the bootstrap settings the whole was aggregated
        with, so a subset's interval is comparable with the whole's (in-distribution vs held-out tasks);
        ``truncated_rate`` is recomputed too. The consistency fields are not (they need the judge's failure
        counts): a subset has none.
        """
        chosen = [s for s in self.per_sample if s["category"] in categories]
        if not chosen:
            return None
        bootstrap = self.aggregate.get("bootstrap", {})
        agg = aggregate(chosen, bootstrap_samples=bootstrap.get("resamples", 1000), seed=bootstrap.get("seed", 0))
        if all("truncated" in s for s in chosen):
            agg["truncated_rate"] = statistics.fmean(float(s["truncated"]) for s in chosen)
        return EvalResult(aggregate=agg, per_sample=chosen, settings=self.settings)


def read_think_prefill(model_dir: str | Path) -> str | None:
    """The ``think_prefill`` text a training stage recorded next to the weights (``grpo_training.json`` or
    ``supervised_training.json``), or ``None`` (a base model, or no prefill)."""
    for name in TRAINING_RECORDS:
        path = Path(model_dir) / name
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8")).get("think_prefill") or None
    return None


def _dump(generation: Generation | None) -> dict[str, Any]:
    assert generation is not None  # every row of a finished batch has its completion
    return generation.model_dump(exclude={"reused"})


def _eos_ids(tokenizer: Any, model: Any) -> set[int]:
    ids: set[int] = set()
    for value in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    return ids


def generate_completions(
    model_dir: str | Path,
    rows: Sequence[TrainingRow],
    *,
    max_new_tokens: int,
    batch_size: int = 8,
    device: str | None = None,
    precision: Literal["auto", "bf16", "fp32"] = "auto",
    progress: bool = True,
    share_prefix: bool = True,
    keep: str | Path | None = None,
    loaded: tuple[Any, Any] | None = None,
) -> list[Generation]:
    """Greedy completions of ``rows``' chat prompts by the model in ``model_dir``, in row order.

    ``precision``: the weights' dtype, as ``grpo.precision`` (``auto``: bf16 on CUDA or an AMX CPU).
    Prompts are rendered with ``apply_chat_template(add_generation_prompt=True)``, sorted by length (less padding;
    the output keeps row order), left-padded and decoded ``batch_size`` at a time with ``do_sample=False``. The
    token count stops at the first EOS; ``truncated`` means no EOS within ``max_new_tokens``. With
    ``share_prefix`` the tokens every prompt starts with (system prompt, role, video preamble) are computed once per
    batch (:mod:`embodied_r.training.common_prefix`): the same greedy completions, ~40% less prefill.

    ``keep``: a JSON-lines file each finished batch is appended to (:mod:`embodied_r.evaluation.kept`; name it
    with :func:`~embodied_r.evaluation.kept.generations_path`). Rows already in it are read back, not generated:
    an interrupted pass resumes at its first unfinished batch, with the same batches as a run from the start.

    ``loaded``: the ``(model, tokenizer)`` :func:`~embodied_r.models.generation.load_for_generation` already gave
    for ``model_dir`` (a served model answers many requests with one load); ``None`` loads it here.
    """
    import torch

    from embodied_r.models.generation import load_for_generation

    if max_new_tokens < 1 or batch_size < 1:
        raise ValueError("max_new_tokens and batch_size must be >= 1")
    # Inference only: bf16 weights where the device computes in bf16 (3-4x faster prefill on an AMX CPU).
    model, tokenizer = loaded or load_for_generation(model_dir, precision=precision, device=device)
    eos = _eos_ids(tokenizer, model)

    texts = [tokenizer.apply_chat_template(r.prompt, add_generation_prompt=True, tokenize=False) for r in rows]
    encoded = [tokenizer(t, add_special_tokens=False).input_ids for t in texts]
    prefix_len = common_prefix_length(encoded) if share_prefix else 0
    if prefix_len < MIN_SHARED_TOKENS:
        prefix_len = 0
    order = sorted(range(len(rows)), key=lambda i: (-len(encoded[i]), i))
    results: list[Generation | None] = [None] * len(rows)
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    done = read_kept(keep, rows) if keep is not None else {}
    for i, item in done.items():
        results[i] = Generation(
            text=item.text, completion_tokens=item.completion_tokens, truncated=item.truncated, reused=True
        )
    todo = [batch for batch in batches if any(results[i] is None for i in batch)]
    if done:
        log.info("%s: %d of %d rows already generated; %d batches left", keep, len(done), len(rows), len(todo))
    greedy = {"do_sample": False, "max_new_tokens": max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
    bar = tqdm(
        total=len(batches), initial=len(batches) - len(todo), desc="generate", unit="batch", disable=not progress
    )
    for batch in todo:
        with torch.inference_mode():
            if prefix_len:
                new_tokens = generate_after_common_prefix(
                    model, [encoded[i] for i in batch], prefix_len, tokenizer.pad_token_id, **greedy
                )
            else:
                enc = tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False)
                enc = {k: v.to(model.device) for k, v in enc.items()}
                out = model.generate(**enc, **greedy)
                new_tokens = out[:, enc["input_ids"].shape[1] :].tolist()
        for i, ids in zip(batch, new_tokens, strict=True):
            end = next((k + 1 for k, t in enumerate(ids) if t in eos), None)
            tokens = ids if end is None else ids[:end]
            results[i] = Generation(
                text=tokenizer.decode(tokens, skip_special_tokens=True),
                completion_tokens=len(tokens),
                truncated=end is None and len(tokens) >= max_new_tokens,
            )
        if keep is not None:
            append_kept(
                keep, [KeptGeneration(row=i, question_id=rows[i].question_id, **_dump(results[i])) for i in batch]
            )
        bar.update()
    bar.close()
    log.info(
        "generated %d completions with %s (max_new_tokens=%d, %d shared prefix tokens)",
        len(rows),
        model_dir,
        max_new_tokens,
        prefix_len,
    )
    return [g for g in results if g is not None]


def judge_consistency(
    judge: ConsistencyJudge, rows: Sequence[TrainingRow], samples: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The judge's verdict per sample: ``{"judge_letter", "consistent", "judge_status"}``, aligned with ``samples``.

    ``judge_status``: ``"not_applicable"`` (numeric row or no letter), ``"no_think"`` (answered without a
    ``<think>`` block), ``"failed_or_unparsable"`` (the request raised or the reply held no letter; the judge's
    :class:`~embodied_r.rewards.judges.JudgeStats` tell the two apart in aggregate) or ``"judged"``.
    ``consistent`` is a bool only for ``"judged"``, else ``None``.
    """
    if len(rows) != len(samples):
        raise ValueError(f"{len(rows)} rows for {len(samples)} samples")
    verdicts: list[dict[str, Any]] = [
        {"judge_letter": None, "consistent": None, "judge_status": "not_applicable"} for _ in samples
    ]
    pending: list[tuple[int, JudgeItem]] = []
    for i, (row, sample) in enumerate(zip(rows, samples, strict=True)):
        if sample["letter"] is None:
            continue
        if not sample["think"]:
            verdicts[i]["judge_status"] = "no_think"
            continue
        pending.append((i, JudgeItem(row.question, sample["think"], tuple(row.choices))))
    if not pending:
        return verdicts
    letters = judge.judge_batch([item for _, item in pending])
    for (i, _item), letter in zip(pending, letters, strict=True):
        if letter is None:
            # judge_batch gives None for both; the split is counted from the judge's stats (consistency_summary)
            verdicts[i]["judge_status"] = "failed_or_unparsable"
            continue
        verdicts[i].update(judge_letter=letter, consistent=letter == samples[i]["letter"], judge_status="judged")
    log.info("consistency judge: %d judged, %d without verdict", len(pending), letters.count(None))
    return verdicts


def consistency_summary(verdicts: Sequence[Mapping[str, Any]], failures: int, unparsable: int) -> dict[str, Any]:
    """``consistency_rate`` over judged samples and the counts around it (``None`` rate when nothing was judged).

    ``failures`` / ``unparsable`` come from the judge's :class:`~embodied_r.rewards.judges.JudgeStats` delta.
    """
    judged = [v for v in verdicts if v["judge_status"] == "judged"]
    return {
        "consistency_rate": statistics.fmean(float(v["consistent"]) for v in judged) if judged else None,
        "consistency_judged": len(judged),
        "consistency_requests": sum(v["judge_status"] in ("judged", "failed_or_unparsable") for v in verdicts),
        "consistency_judge_failures": failures,
        "consistency_judge_unparsable": unparsable,
        "consistency_no_think": sum(v["judge_status"] == "no_think" for v in verdicts),
    }


def evaluate_model(
    model_dir: str | Path,
    rows: Sequence[TrainingRow],
    *,
    max_new_tokens: int,
    batch_size: int,
    judge: ConsistencyJudge | None = None,
    answer_mode: AnswerMode = "answer_tag",
    think_prefill: str | Literal["auto"] | None = "auto",
    device: str | None = None,
    precision: Literal["auto", "bf16", "fp32"] = "auto",
    bootstrap_samples: int = 1000,
    seed: int = 0,
    progress: bool = True,
    share_prefix: bool = True,
    keep_dir: str | Path | None = None,
) -> EvalResult:
    """Generate greedily for ``rows``, score, optionally judge consistency, aggregate.

    ``think_prefill="auto"`` reads it from ``model_dir/grpo_training.json`` (see the module docstring).
    ``keep_dir``: keep the completions there as they are generated (:mod:`embodied_r.evaluation.kept`), so an
    interrupted evaluation resumes and a repeated one generates nothing; ``settings["kept"]`` names the file and
    ``settings["reused_rows"]`` counts the rows read back.
    """
    if not rows:
        raise ValueError("no rows to evaluate")
    prefill = read_think_prefill(model_dir) if think_prefill == "auto" else think_prefill
    generation = {"max_new_tokens": max_new_tokens, "batch_size": batch_size, "device": device,
                  "precision": precision, "share_prefix": share_prefix}  # fmt: skip
    keep = None
    if keep_dir is not None:
        import torch
        import transformers

        versions = {"torch": torch.__version__, "transformers": transformers.__version__}  # numerics may change
        keep = generations_path(keep_dir, model_dir, rows, generation | versions)
    generations = generate_completions(model_dir, rows, progress=progress, keep=keep, **generation)
    reused = sum(g.reused for g in generations)
    samples = [
        score_sample(g.text, row, think_prefill=prefill, answer_mode=answer_mode, completion_tokens=g.completion_tokens)
        | {"truncated": g.truncated}
        for g, row in zip(generations, rows, strict=True)
    ]
    agg = aggregate(samples, bootstrap_samples=bootstrap_samples, seed=seed)
    agg["truncated_rate"] = statistics.fmean(float(s["truncated"]) for s in samples)
    if judge is not None:
        before = judge.stats.copy()
        verdicts = judge_consistency(judge, rows, samples)
        delta = judge.stats - before
        for sample, verdict in zip(samples, verdicts, strict=True):
            sample.update(verdict)
        agg.update(consistency_summary(verdicts, delta.failures, delta.unparsable))
        if delta.failures or delta.unparsable:
            log.warning(
                "consistency judge: %d failed and %d unparsable of %d requests (excluded from consistency_rate)",
                delta.failures,
                delta.unparsable,
                delta.calls,
            )
    settings = {
        "do_sample": False,
        "max_new_tokens": max_new_tokens,
        "batch_size": batch_size,
        "padding_side": "left",
        "share_prefix": share_prefix,
        "precision": precision,
        "answer_mode": answer_mode,
        "think_prefill": prefill,
        "judge": repr(judge) if judge is not None else None,
        "kept": str(keep) if keep is not None else None,
        "reused_rows": reused,
    }
    log.info(
        "evaluated %s on %d rows: pooled accuracy %.3f, format %.3f",
        model_dir,
        len(rows),
        agg["pooled_accuracy"],
        agg["format_compliance"],
    )
    return EvalResult(aggregate=agg, per_sample=samples, settings=settings)


def compare(base: EvalResult, trained: EvalResult, *, bootstrap_samples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Trained minus base: pooled and per-category accuracy deltas, format / consistency deltas, paired flips.

    ``fixed`` / ``broken`` count questions (matched by ``question_id``) that the trained model gets right and the
    base wrong, and the reverse; ``paired_n`` is the number of shared questions. ``paired_delta`` and
    ``paired_delta_ci95``: the mean per-question score difference over the shared questions and its paired
    bootstrap 95% interval (:func:`~embodied_r.evaluation.metrics.paired_difference`) — the interval of the
    gain itself, tighter than the overlap of the two models' pooled intervals.
    """

    def delta(key: str) -> float | None:
        a, b = base.aggregate.get(key), trained.aggregate.get(key)
        return None if a is None or b is None else b - a

    base_cats, trained_cats = base.aggregate["per_category"], trained.aggregate["per_category"]
    per_category = {
        cat: {
            "base": base_cats.get(cat, {}).get("accuracy"),
            "trained": trained_cats.get(cat, {}).get("accuracy"),
        }
        for cat in sorted(set(base_cats) | set(trained_cats))
    }
    for values in per_category.values():
        a, b = values["base"], values["trained"]
        values["delta"] = None if a is None or b is None else b - a
    base_by_id = {s["question_id"]: s for s in base.per_sample}
    shared = [(base_by_id[s["question_id"]], s) for s in trained.per_sample if s["question_id"] in base_by_id]
    paired = paired_difference(
        [b["score"] for b, _ in shared], [t["score"] for _, t in shared], n=bootstrap_samples, seed=seed
    )
    return {
        "pooled_accuracy_delta": delta("pooled_accuracy"),
        "category_mean_accuracy_delta": delta("category_mean_accuracy"),
        "format_compliance_delta": delta("format_compliance"),
        "consistency_rate_delta": delta("consistency_rate"),
        "mean_completion_tokens_delta": delta("mean_completion_tokens"),
        "per_category": per_category,
        "paired_n": len(shared),
        "paired_delta": paired["delta"] if shared else None,
        "paired_delta_ci95": paired["ci95"] if shared else None,
        "fixed": sum(not b["correct"] and t["correct"] for b, t in shared),
        "broken": sum(b["correct"] and not t["correct"] for b, t in shared),
    }
