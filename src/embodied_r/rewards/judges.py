"""The consistency judges: a frozen reference LM reads a question and a reasoning process and answers one letter.

Backends (``rewards.judge.backend``): the policy's initial checkpoint or another local checkpoint
(:class:`LocalHFJudge`, batched ``generate``), or an OpenAI-compatible server (:class:`OpenAIJudge`, a thread
pool of requests). :func:`build_judge` makes the one the config describes. torch, transformers and openai are
imported inside the functions that need them, so importing this module stays light.

Every judge fails the same visible way (:class:`ConsistencyJudge`): a failed or unparsable request gives
``None``, is counted in ``judge.stats`` and logged at WARNING with credentials redacted.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from embodied_r.answers import extract_answer
from embodied_r.openai_client import openai_client, resolve_api_key
from embodied_r.redaction import redact_secrets
from embodied_r.rewards.config import JudgeConfig

logger = logging.getLogger(__name__)

__all__ = [
    "JUDGE_SYSTEM_PROMPT",
    "JUDGE_USER_TEMPLATE",
    "ConsistencyJudge",
    "JudgeItem",
    "JudgeStats",
    "LocalHFJudge",
    "OpenAIJudge",
    "build_judge",
    "judge_messages",
]

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

    The key is read from the environment variable ``api_key_env`` by :func:`embodied_r.openai_client.resolve_api_key`:
    a server on this machine needs none (``"EMPTY"`` is sent then), any other server without one is refused with
    :class:`~embodied_r.openai_client.MissingAPIKeyError`. The key is never logged: error messages are redacted
    before logging and ``repr`` omits it.
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
        # The project's one key policy (embodied_r.openai_client): a loopback server may run keyless, any other
        # server without a key is refused here rather than answering every request with 401.
        key = resolve_api_key(api_key_env, base_url, setting="rewards.judge.api_key_env")
        self._secret = key
        if client is None:
            client = openai_client(base_url=base_url, api_key=key, timeout_s=timeout_s, max_retries=max_retries)
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
