"""The think prefill (``grpo.think_prefill``, not in the paper): the policy starts inside its reasoning.

Small models rarely open ``<think>`` on their own. The tokenizer's chat template gets
``{% if add_generation_prompt %}<think>{% endif %}`` appended, so every rendered prompt ends with
``…<|im_start|>assistant\\n<think>`` and the model continues inside its reasoning. The completion TRL hands to
the rewards then lacks the opening tag, so every reward function is wrapped (:func:`trl_reward_func`) to see
``"<think>" + completion`` — the full assistant turn — and the strict format reward still applies unchanged.
The saved ``final`` tokenizer keeps the prefilled template, so inference matches training; when scoring such
a model's format outside training, prepend ``<think>`` the same way (``final/grpo_training.json`` records it).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from embodied_r.training.config import THINK_PREFILL

RewardFunc = Callable[..., list[float | None]]


def with_think_prefill(template: str | None, prefill: str = THINK_PREFILL) -> str:
    """The chat template with ``prefill`` emitted after the generation prompt.

    >>> t = "{% for m in messages %}{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}A:{% endif %}"
    >>> with_think_prefill(t).endswith("{% if add_generation_prompt %}<think>{% endif %}")
    True
    >>> with_think_prefill(with_think_prefill(t)) == with_think_prefill(t)  # idempotent
    True
    """
    if not template:
        raise ValueError("think_prefill needs a tokenizer with a chat template")
    block = "{% if add_generation_prompt %}" + prefill + "{% endif %}"
    if template.endswith(block):  # already prefilled (a model saved by a stage that used it)
        return template
    return template + block


def trl_reward_func(fn: RewardFunc, name: str, prefix: str = "") -> RewardFunc:
    """``fn`` as TRL should call it: named ``name`` (TRL's metric name), seeing ``prefix`` + each completion.

    Returned unchanged when its ``__name__`` already is ``name`` and there is no prefix.
    """
    if not prefix and getattr(fn, "__name__", None) == name:
        return fn

    def view(completions: Sequence[Any]) -> list[Any]:
        return [prepend(c, prefix) for c in completions] if prefix else list(completions)

    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None)):  # noqa: B004

        async def async_reward(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
            return await fn(completions=view(completions), **kwargs)

        wrapped: Any = async_reward
    else:

        def reward(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
            return fn(completions=view(completions), **kwargs)

        wrapped = reward
    wrapped.__name__ = name
    wrapped.__qualname__ = name
    wrapped.__wrapped__ = fn
    return wrapped


def prepend(completion: Any, prefix: str) -> Any:
    """``prefix`` + a completion, plain text or TRL's conversational ``[{"role": "assistant", "content": ...}]``."""
    if isinstance(completion, str):
        return prefix + completion
    messages = [dict(m) for m in completion]
    for message in messages:
        if message.get("role") == "assistant" and isinstance(message.get("content"), str):
            message["content"] = prefix + message["content"]
            break
    return messages


__all__ = ["prepend", "trl_reward_func", "with_think_prefill"]
