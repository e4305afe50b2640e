"""The GRPO rewards of Embodied-R (reference §5): format, accuracy and logical consistency, and their schedule.

Reward functions follow TRL 1.16's calling convention (``GRPOTrainer._calculate_rewards``)::

    fn(prompts=..., completions=..., completion_ids=..., solution=[...], question=[...], choices=[...],
       trainer_state=..., log_extra=..., log_metric=..., <other dataset columns>) -> list[float | None]

Completions are plain strings or conversational lists (``[{"role": "assistant", "content": ...}]``). The
dataset columns are those of :class:`embodied_r.training.rows.TrainingRow`: ``solution`` (the letter, or a
number for numeric rows), ``question`` (the question with its lettered choices, no video text) and
``choices`` (the option letters; empty for numeric rows).

``None`` means "not applicable / not scored". TRL turns it into NaN: the per-reward metric
(``rewards/<name>/mean``) is a ``nanmean``, so it excludes the row, and the weighted sum is a ``nansum``, so
a ``None`` contributes **nothing** to that completion's total (the same as 0 for the advantage). A completion
for which every reward is ``None`` gets advantage 0. The consistency reward returns ``None`` when the judge
call failed — never a silent 0 — and the failure is counted in ``judge.stats``, logged at WARNING, and
reported through TRL's ``log_metric`` as ``judge/failures`` etc.

Everything is reachable through :data:`REWARD_FACTORIES` (name → factory) and :func:`build_reward_funcs`.
"""

from __future__ import annotations

import logging
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, get_args

from embodied_r.answers import AccuracyMode, extract_answer, extract_number, extract_think, mean_relative_accuracy
from embodied_r.redaction import redact_secrets

logger = logging.getLogger(__name__)

__all__ = [
    "JUDGE_SYSTEM_PROMPT",
    "JUDGE_USER_TEMPLATE",
    "REWARD_FACTORIES",
    "REWARD_NAMES",
    "AccuracyReward",
    "ConsistencyJudge",
    "ConsistencyReward",
    "FormatReward",
    "JudgeConfig",
    "JudgeItem",
    "JudgeStats",
    "LocalHFJudge",
    "OpenAIJudge",
    "RewardSchedule",
    "RewardStage",
    "RewardsConfig",
    "accuracy_reward",
    "build_judge",
    "build_reward_funcs",
    "completion_text",
    "format_reward",
    "judge_messages",
    "make_accuracy_reward",
    "make_consistency_reward",
    "make_format_reward",
    "progress_from_trainer_state",
]

from embodied_r.rewards.config import JudgeConfig, RewardSchedule, RewardsConfig, RewardStage  # noqa: E402
from embodied_r.rewards.schedule import REWARD_NAMES  # noqa: E402

# ---------------------------------------------------------------------------------------------------------------------
# Helpers shared by the rewards
# ---------------------------------------------------------------------------------------------------------------------

_LETTER_RE = re.compile(r"^[A-H]$")


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, or TRL's conversational ``[{"role": "assistant", "content": …}]``.

    Content given as parts (``[{"type": "text", "text": …}]``) is joined; several assistant messages are joined.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    texts: list[str] = []
    for message in completion:
        if message.get("role", "assistant") != "assistant":
            continue
        content = message.get("content", "")
        if isinstance(content, str):
            texts.append(content)
        else:
            texts.extend(part.get("text", "") for part in content if part.get("type", "text") == "text")
    return "".join(texts)


def _column(kwargs: dict[str, Any], name: str, n: int) -> list[Any] | None:
    values = kwargs.get(name)
    if values is None:
        return None
    if isinstance(values, str) or not isinstance(values, Sequence):
        return [values] * n
    if len(values) != n:
        raise ValueError(f"column {name!r} has {len(values)} values for {n} completions")
    return list(values)


def _solutions(solution: Any, n: int) -> list[str]:
    values = _column({"solution": solution}, "solution", n)
    if values is None:
        raise ValueError("the reward functions need the 'solution' column")
    return [str(v).strip() for v in values]


def _choices(kwargs: dict[str, Any], solutions: list[str], n: int) -> list[tuple[str, ...]]:
    """Each row's option letters: the ``choices`` column, else inferred (a letter solution → A–H, else numeric)."""
    column = kwargs.get("choices")
    if column is not None:
        if len(column) != n:
            raise ValueError(f"column 'choices' has {len(column)} values for {n} completions")
        return [tuple(str(c).strip().upper() for c in (row or ())) for row in column]
    return [tuple("ABCDEFGH") if _LETTER_RE.match(s.upper()) else () for s in solutions]


def progress_from_trainer_state(state: Any) -> tuple[float | None, float | None]:
    """(elapsed epochs, fraction of optimizer steps done) from a ``transformers.TrainerState``."""
    epoch = getattr(state, "epoch", None)
    max_steps = getattr(state, "max_steps", 0) or 0
    step = getattr(state, "global_step", 0) or 0
    fraction = min(step / max_steps, 1.0) if max_steps > 0 else None
    return (float(epoch) if epoch is not None else None), fraction


# ---------------------------------------------------------------------------------------------------------------------
# Format
# ---------------------------------------------------------------------------------------------------------------------

# One tag-free stretch of non-blank text: no <think>, </think>, <answer> or </answer> inside.
_TAG_FREE = r"(?:(?!</?(?:think|answer)>).)*?\S(?:(?!</?(?:think|answer)>).)*?"
_STRICT_FORMAT_RE = re.compile(rf"^\s*<think>{_TAG_FREE}</think>\s*<answer>{_TAG_FREE}</answer>\s*$", re.DOTALL)
_THINK_PAIR_RE = re.compile(r"<think>.*?</think>", re.DOTALL)
_ANSWER_PAIR_RE = re.compile(r"<answer>.*?</answer>", re.DOTALL)


class FormatReward:
    """1.0 iff the completion is ``<think>…</think>`` then ``<answer>…</answer>`` and nothing else.

    Strict (the paper): whitespace may surround and separate the blocks; nothing else may come before
    ``<think>``, between the blocks or after ``</answer>``; exactly one of each tag, not nested; both blocks
    hold some non-blank text (an empty ``<think>`` would pay for dropping the reasoning). Tags are lower case.

    ``partial_credit`` (0 = strict, the default) helps small models find the format: a completion that is not
    strictly formatted but holds a complete ``<think>…</think>`` followed by a complete ``<answer>…</answer>``
    (text around or between them, repeated or empty blocks) earns ``partial_credit``; one with only one of
    the two complete blocks earns ``partial_credit / 2``.
    """

    def __init__(self, partial_credit: float = 0.0, name: str = "format") -> None:
        if not 0.0 <= partial_credit <= 1.0:
            raise ValueError(f"partial_credit must be in [0, 1], got {partial_credit}")
        self.partial_credit = partial_credit
        self.__name__ = name

    def score(self, text: str) -> float:
        """The format reward of one completion's text."""
        if _STRICT_FORMAT_RE.match(text):
            return 1.0
        if self.partial_credit == 0.0:
            return 0.0
        think = _THINK_PAIR_RE.search(text)
        answer = _ANSWER_PAIR_RE.search(text, think.end()) if think else None
        if think and answer:
            return self.partial_credit
        if think or _ANSWER_PAIR_RE.search(text):
            return self.partial_credit / 2
        return 0.0

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        return [self.score(completion_text(c)) for c in completions]

    def __repr__(self) -> str:
        return f"FormatReward(partial_credit={self.partial_credit})"


def make_format_reward(partial_credit: float = 0.0) -> FormatReward:
    """The format reward; ``partial_credit=0`` is the paper's strict reward (see :class:`FormatReward`)."""
    return FormatReward(partial_credit)


# ---------------------------------------------------------------------------------------------------------------------
# Accuracy
# ---------------------------------------------------------------------------------------------------------------------


class AccuracyReward:
    """1.0 iff the completion's option letter equals ``solution``; numeric rows are scored with MRA.

    ``mode="answer_tag"`` reads the letter from the last ``<answer>`` block; ``"official_scan"`` reproduces
    the official scan of the whole completion (see :mod:`embodied_r.answers`). Rows with empty ``choices``
    are numeric: the first number in ``<answer>`` against ``float(solution)``, by mean relative accuracy
    (in both modes — the official code has no numeric rows).
    """

    def __init__(self, mode: AccuracyMode = "answer_tag", name: str = "accuracy") -> None:
        if mode not in get_args(AccuracyMode):
            raise ValueError(f"accuracy mode must be one of {get_args(AccuracyMode)}, got {mode!r}")
        self.mode = mode
        self.__name__ = name

    def score(self, text: str, solution: str, choices: Sequence[str], question: str | None = None) -> float:
        """The accuracy reward of one completion's text (``question``: its option texts, for ``answer_text``)."""
        if not choices:
            try:
                truth = float(solution)
            except ValueError as exc:
                raise ValueError(f"numeric row (no choices) with a non-numeric solution {solution!r}") from exc
            return mean_relative_accuracy(extract_number(text), truth)
        letter = extract_answer(text, choices, self.mode, question=question)
        return float(letter is not None and letter == solution.upper())

    def __call__(self, completions: Sequence[Any], solution: Sequence[Any], **kwargs: Any) -> list[float | None]:
        n = len(completions)
        solutions = _solutions(solution, n)
        choices = _choices(kwargs, solutions, n)
        questions = _column(kwargs, "question", n) or [None] * n
        return [
            self.score(completion_text(c), s, ch, q)
            for c, s, ch, q in zip(completions, solutions, choices, questions, strict=True)
        ]

    def __repr__(self) -> str:
        return f"AccuracyReward(mode={self.mode!r})"


def make_accuracy_reward(mode: AccuracyMode = "answer_tag") -> AccuracyReward:
    """The accuracy reward reading answers in ``mode`` (see :class:`AccuracyReward`)."""
    return AccuracyReward(mode)


# ---------------------------------------------------------------------------------------------------------------------
# Consistency judges
# ---------------------------------------------------------------------------------------------------------------------

#: The judge's instructions. The judge sees the question with its choices and the policy's reasoning only.
JUDGE_SYSTEM_PROMPT = "You are a careful assistant who answers multiple-choice questions."
JUDGE_USER_TEMPLATE = (
    "Below are a multiple-choice question and a reasoning process written for it. Choose the option that the "
    "reasoning process leads to.\n\n"
    "Question:\n{question}\n\n"
    "Reasoning process:\n{think}\n\n"
    "Reply with exactly one letter ({letters}) and nothing else."
)


@dataclass(frozen=True)
class JudgeItem:
    """One request to the judge: the question with its choices, the ``<think>`` text, the option letters."""

    question: str
    think: str
    choices: tuple[str, ...] = ("A", "B", "C", "D")


def judge_messages(item: JudgeItem) -> list[dict[str, str]]:
    """The chat messages sent to the judge for ``item``."""
    user = JUDGE_USER_TEMPLATE.format(question=item.question.strip(), think=item.think, letters=", ".join(item.choices))
    return [{"role": "system", "content": JUDGE_SYSTEM_PROMPT}, {"role": "user", "content": user}]


@dataclass
class JudgeStats:
    """Counts of judge requests, cumulative over the judge's life (log them as training metrics).

    ``calls``: requests made (one per completion judged). ``failures``: requests that raised (HTTP error after
    retries, timeout, generate error). ``unparsable``: replies that held no valid option letter.
    ``calls - failures - unparsable`` requests produced a verdict.
    """

    calls: int = 0
    failures: int = 0
    unparsable: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict."""
        return {"calls": self.calls, "failures": self.failures, "unparsable": self.unparsable}

    def copy(self) -> JudgeStats:
        """A snapshot of the counts."""
        return replace(self)

    def __sub__(self, other: JudgeStats) -> JudgeStats:
        return JudgeStats(self.calls - other.calls, self.failures - other.failures, self.unparsable - other.unparsable)


class ConsistencyJudge(ABC):
    """A frozen reference LM that reads a question and a reasoning process and answers with one letter.

    Implementations provide :meth:`_complete` (raw replies, or the exception for a failed request); the base
    class does the prompting, the letter parsing, the counting in :attr:`stats` and the WARNING logs, so every
    judge fails the same visible way: a failed or unparsable request gives ``None``, never a letter by default.
    """

    name = "judge"

    def __init__(self) -> None:
        self.stats = JudgeStats()

    @abstractmethod
    def _complete(self, conversations: list[list[dict[str, str]]]) -> list[str | BaseException]:
        """One raw reply per conversation, or the exception that request failed with."""

    def _describe_error(self, error: BaseException) -> str:
        """The error as logged, with anything shaped like a credential redacted (implementations add their key)."""
        return redact_secrets(f"{type(error).__name__}: {error}")

    def judge(self, question: str, think: str, choices: Sequence[str] = ("A", "B", "C", "D")) -> str | None:
        """The letter the judge picks for ``question`` given the reasoning ``think``, or ``None`` on failure."""
        return self.judge_batch([JudgeItem(question, think, tuple(choices))])[0]

    def judge_batch(self, items: Sequence[JudgeItem]) -> list[str | None]:
        """:meth:`judge` for many items at once (batched or concurrent, by implementation)."""
        if not items:
            return []
        try:
            replies = self._complete([judge_messages(item) for item in items])
        except Exception as exc:  # a broken implementation must not look like a verdict either
            replies = [exc] * len(items)
        if len(replies) != len(items):
            raise RuntimeError(f"{type(self).__name__} returned {len(replies)} replies for {len(items)} requests")
        letters: list[str | None] = []
        errors: list[BaseException] = []
        unparsable: list[str] = []
        for item, reply in zip(items, replies, strict=True):
            if isinstance(reply, BaseException):
                errors.append(reply)
                letters.append(None)
                continue
            letter = extract_answer(reply, item.choices, mode="bare")
            if letter is None:
                unparsable.append(reply)
            letters.append(letter)
        self.stats.calls += len(items)
        self.stats.failures += len(errors)
        self.stats.unparsable += len(unparsable)
        if errors:
            logger.warning(
                "consistency judge %s: %d of %d requests failed (consistency reward None for them; %d failures "
                "so far); first error: %s",
                self.name,
                len(errors),
                len(items),
                self.stats.failures,
                self._describe_error(errors[0]),
            )
        if unparsable:
            logger.warning(
                "consistency judge %s: %d of %d replies held no option letter (reward None); first reply: %r",
                self.name,
                len(unparsable),
                len(items),
                unparsable[0][:200],
            )
        return letters


class LocalHFJudge(ConsistencyJudge):
    """A local Hugging Face causal LM as the judge, batched over a group's completions.

    The model is used as given (pass a frozen copy, not the policy being trained) under
    ``torch.inference_mode``. Prompts go through the tokenizer's chat template when it has one, left-padded;
    ``temperature`` 0.1 samples as the paper does, 0 decodes greedily.
    """

    name = "local"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        temperature: float = 0.1,
        max_new_tokens: int = 8,
        batch_size: int = 8,
    ) -> None:
        super().__init__()
        if temperature < 0 or max_new_tokens < 1 or batch_size < 1:
            raise ValueError("temperature must be >= 0, max_new_tokens and batch_size >= 1")
        self.model = model
        self.tokenizer = tokenizer
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        if getattr(tokenizer, "pad_token_id", None) is None:
            tokenizer.pad_token = tokenizer.eos_token

    @classmethod
    def from_pretrained(
        cls,
        path: str,
        *,
        device: str | None = None,
        dtype: str = "auto",
        **kwargs: Any,
    ) -> LocalHFJudge:
        """Load the judge from a local checkpoint (offline: nothing is fetched from a hub)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
        tokenizer = AutoTokenizer.from_pretrained(path)
        try:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
        except ValueError:  # a vision-language checkpoint (Qwen2.5-VL) used for text only
            from transformers import AutoModelForImageTextToText

            model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch_dtype)
        model.eval()
        model.requires_grad_(False)
        if device is not None:
            model.to(device)
        logger.info("consistency judge: loaded local model from %s", path)
        return cls(model, tokenizer, **kwargs)

    def _prompt(self, conversation: list[dict[str, str]]) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in conversation) + "\n\nAnswer: "

    def _complete(self, conversations: list[list[dict[str, str]]]) -> list[str | BaseException]:
        import torch

        replies: list[str | BaseException] = []
        for start in range(0, len(conversations), self.batch_size):
            chunk = conversations[start : start + self.batch_size]
            try:
                replies.extend(self._generate([self._prompt(c) for c in chunk], torch))
            except Exception as exc:
                replies.extend([exc] * len(chunk))
        return replies

    def _generate(self, prompts: list[str], torch: Any) -> list[str]:
        device = next(self.model.parameters()).device
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
        enc = {k: v.to(device) for k, v in enc.items()}
        sampling = {"do_sample": True, "temperature": self.temperature, "top_p": 1.0}
        with torch.inference_mode():
            out = self.model.generate(
                **enc,
                **(sampling if self.temperature > 0 else {"do_sample": False}),
                max_new_tokens=self.max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new_tokens = out[:, enc["input_ids"].shape[1] :]
        return self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)


class OpenAIJudge(ConsistencyJudge):
    """An OpenAI-compatible chat server as the judge (vLLM, an API), through the ``openai`` SDK.

    The key is read from the environment variable ``api_key_env`` (a local server needs none: ``"EMPTY"`` is
    sent then). It is never logged: error messages are redacted before logging and ``repr`` omits it.
    Requests run ``concurrency`` at a time; the SDK retries ``max_retries`` times with backoff, then the
    request counts as a failure.
    """

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.1,
        max_tokens: int = 8,
        timeout_s: float = 30.0,
        max_retries: int = 2,
        concurrency: int = 4,
        client: Any = None,
    ) -> None:
        super().__init__()
        self.base_url = base_url
        self.model = model
        self.api_key_env = api_key_env
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.concurrency = concurrency
        key = os.environ.get(api_key_env)
        if not key:
            logger.info("consistency judge: env var %s is not set; sending a placeholder key", api_key_env)
        self._secret = key or ""
        if client is None:
            import openai

            client = openai.OpenAI(
                api_key=key or "EMPTY", base_url=base_url, timeout=timeout_s, max_retries=max_retries
            )
        self._client = client

    def __repr__(self) -> str:
        return f"OpenAIJudge(base_url={self.base_url!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"

    def _describe_error(self, error: BaseException) -> str:
        return redact_secrets(f"{type(error).__name__}: {error}", known_secrets=[self._secret])

    def _one(self, conversation: list[dict[str, str]]) -> str | BaseException:
        try:
            response = self._client.chat.completions.create(
                model=self.model, messages=conversation, temperature=self.temperature, max_tokens=self.max_tokens
            )
            content = response.choices[0].message.content
        except Exception as exc:
            return exc
        return content if isinstance(content, str) else ""

    def _complete(self, conversations: list[list[dict[str, str]]]) -> list[str | BaseException]:
        if len(conversations) == 1 or self.concurrency == 1:
            return [self._one(c) for c in conversations]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(conversations))) as pool:
            return list(pool.map(self._one, conversations))


def build_judge(cfg: JudgeConfig, *, policy_model_path: str | None = None) -> ConsistencyJudge | None:
    """The judge ``cfg`` describes; ``policy_init`` loads ``policy_model_path`` (the policy's initial checkpoint)."""
    if cfg.backend == "none":
        return None
    if cfg.backend == "openai":
        return OpenAIJudge(
            base_url=cfg.base_url or "",
            model=cfg.model or "",
            api_key_env=cfg.api_key_env,
            temperature=cfg.temperature,
            max_tokens=cfg.max_new_tokens,
            timeout_s=cfg.timeout_s,
            max_retries=cfg.max_retries,
            concurrency=cfg.concurrency,
        )
    path = cfg.model if cfg.backend == "local" else policy_model_path
    if not path:
        raise ValueError("judge.backend 'policy_init' needs the policy's initial checkpoint: pass policy_model_path")
    return LocalHFJudge.from_pretrained(
        path,
        device=cfg.device,
        dtype=cfg.dtype,
        temperature=cfg.temperature,
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.batch_size,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Consistency
# ---------------------------------------------------------------------------------------------------------------------


class ConsistencyReward:
    """Logical consistency: does the reasoning alone lead a frozen judge to the policy's (correct) answer?

    Per completion: ``0.0`` unless the answer is correct (read in ``mode``, as the accuracy reward does);
    ``0.0`` if there is no non-empty ``<think>`` block; otherwise the judge gets the ``question`` column and
    the ``<think>`` text and ``1.0`` iff its letter equals the policy's. ``None`` (TRL: not applicable) for a
    failed or unparsable judge request, for numeric rows, and — with a ``schedule`` and
    ``skip_when_unweighted`` — while the schedule gives consistency weight 0 (the judge is not called then).

    Each call reports this batch's judge counts through TRL's ``log_metric`` (``judge/calls``,
    ``judge/failures``, ``judge/unparsable``, ``judge/failure_rate``) and the judge's letter per completion
    through ``log_extra`` (column ``judge_letter``); cumulative counts stay in ``judge.stats``.
    """

    def __init__(
        self,
        judge: ConsistencyJudge,
        *,
        mode: AccuracyMode = "answer_tag",
        schedule: RewardSchedule | None = None,
        skip_when_unweighted: bool = True,
        name: str = "consistency",
    ) -> None:
        self.judge = judge
        self.mode = mode
        self.schedule = schedule
        self.skip_when_unweighted = skip_when_unweighted
        self.__name__ = name

    def _unweighted_now(self, trainer_state: Any) -> bool:
        if self.schedule is None or not self.skip_when_unweighted or trainer_state is None:
            return False
        epoch, fraction = progress_from_trainer_state(trainer_state)
        try:
            return self.schedule.weights_at(epoch, fraction)[2] == 0
        except ValueError:  # no progress information of the schedule's unit: judge to be safe
            return False

    def __call__(self, completions: Sequence[Any], solution: Sequence[Any], **kwargs: Any) -> list[float | None]:
        n = len(completions)
        if self._unweighted_now(kwargs.get("trainer_state")):
            return [None] * n
        solutions = _solutions(solution, n)
        choices = _choices(kwargs, solutions, n)
        questions = _column(kwargs, "question", n)
        if questions is None:
            raise ValueError("the consistency reward needs the 'question' column (question with its choices)")
        rewards: list[float | None] = [None] * n
        pending: list[tuple[int, JudgeItem, str]] = []
        for i, completion in enumerate(completions):
            if not choices[i]:
                continue  # numeric row: no letter to be consistent with
            text = completion_text(completion)
            letter = extract_answer(text, choices[i], self.mode, question=str(questions[i]))
            if letter is None or letter != solutions[i].upper():
                rewards[i] = 0.0
                continue
            think = extract_think(text)
            if think is None:
                rewards[i] = 0.0
                continue
            pending.append((i, JudgeItem(str(questions[i]), think, choices[i]), letter))
        before = self.judge.stats.copy()
        verdicts = self.judge.judge_batch([item for _, item, _ in pending])
        judge_letters: list[str | None] = [None] * n
        for (i, _, letter), verdict in zip(pending, verdicts, strict=True):
            judge_letters[i] = verdict
            rewards[i] = None if verdict is None else float(verdict == letter)
        self._report(kwargs, self.judge.stats - before, judge_letters)
        return rewards

    def _report(self, kwargs: dict[str, Any], delta: JudgeStats, judge_letters: list[str | None]) -> None:
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            for key, value in delta.as_dict().items():
                log_metric(f"judge/{key}", float(value))
            if delta.calls:
                log_metric("judge/failure_rate", (delta.failures + delta.unparsable) / delta.calls)
        log_extra = kwargs.get("log_extra")
        if callable(log_extra):
            log_extra("judge_letter", [letter or "" for letter in judge_letters])

    def __repr__(self) -> str:
        return f"ConsistencyReward(judge={self.judge!r}, mode={self.mode!r})"


def make_consistency_reward(
    judge: ConsistencyJudge,
    *,
    mode: AccuracyMode = "answer_tag",
    schedule: RewardSchedule | None = None,
    skip_when_unweighted: bool = True,
) -> ConsistencyReward:
    """The consistency reward asking ``judge`` (see :class:`ConsistencyReward`)."""
    return ConsistencyReward(judge, mode=mode, schedule=schedule, skip_when_unweighted=skip_when_unweighted)


# ---------------------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------------------

#: The paper's strict format reward and the answer-tag accuracy reward, ready to pass to TRL.
format_reward = make_format_reward()
accuracy_reward = make_accuracy_reward()

RewardFunc = Callable[..., list[float | None]]

#: Name → factory. Factories take the reward's parameters and return a TRL reward function.
REWARD_FACTORIES: dict[str, Callable[..., RewardFunc]] = {
    "format": make_format_reward,
    "accuracy": make_accuracy_reward,
    "consistency": make_consistency_reward,
}


def build_reward_funcs(
    cfg: RewardsConfig,
    judge: ConsistencyJudge | None = None,
    *,
    policy_model_path: str | None = None,
) -> tuple[list[RewardFunc], list[str]]:
    """The reward functions for ``GRPOTrainer(reward_funcs=...)`` and their names, in schedule order.

    ``names`` is a sub-sequence of ``("format", "accuracy", "consistency")`` — consistency is left out when
    ``cfg.judge.backend`` is ``"none"`` and no ``judge`` is given — and equals each function's ``__name__``
    (TRL logs ``rewards/<name>/mean``). Align the weights with ``cfg.schedule.weights_for(names, ...)``.
    Without ``judge``, one is built from ``cfg.judge`` (``policy_model_path`` for ``policy_init``).
    """
    funcs: list[RewardFunc] = [
        make_format_reward(cfg.format_partial_credit),
        make_accuracy_reward(cfg.accuracy_mode),
    ]
    if judge is None:
        judge = build_judge(cfg.judge, policy_model_path=policy_model_path)
    if judge is not None:
        funcs.append(
            make_consistency_reward(
                judge,
                mode=cfg.accuracy_mode,
                schedule=cfg.schedule,
                skip_when_unweighted=cfg.skip_judge_when_unweighted,
            )
        )
    names = [f.__name__ for f in funcs]  # type: ignore[attr-defined]
    logger.info("rewards: %s (accuracy mode %s)", ", ".join(names), cfg.accuracy_mode)
    return funcs, names
