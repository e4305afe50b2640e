"""One policy for every OpenAI-compatible server the project talks to (the perception VLM, the consistency judge).

The API key is never in ``params.yaml``: the config names the environment variable that holds it
(``perception.api_key_env``, ``rewards.judge.api_key_env``). When that variable is unset:

- a server on this machine (a loopback host such as a local vLLM, which accepts any key) gets the placeholder
  key ``EMPTY``;
- any other server is refused with :class:`MissingAPIKeyError`, naming the variable and the setting, before a
  request is made — a remote API would answer every request with 401, and a judge's 401 would quietly turn the
  consistency reward into ``None`` for a whole run.

The key is returned to the caller, who passes it to the SDK and to :func:`~embodied_r.redaction.redact_secrets`
when an error is turned into text; it is never logged here.

No ``openai`` import at module level: :func:`openai_client` imports it when a client is made.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import Any
from urllib.parse import urlparse

from embodied_r.errors import UserError

logger = logging.getLogger(__name__)

__all__ = ["LOOPBACK_HOSTS", "PLACEHOLDER_KEY", "MissingAPIKeyError", "is_loopback", "openai_client", "resolve_api_key"]

#: Host names that reach this machine; any ``127.x.x.x`` / ``::1`` address counts too (see :func:`is_loopback`).
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
#: The key sent to a loopback server when none is set (vLLM ignores it; the SDK refuses an empty one).
PLACEHOLDER_KEY = "EMPTY"


class MissingAPIKeyError(UserError, ValueError):
    """The environment variable that should hold the API key of a non-loopback server is not set."""


def is_loopback(base_url: str) -> bool:
    """Whether ``base_url`` points to this machine.

    >>> is_loopback("http://127.0.0.1:8000/v1"), is_loopback("http://localhost:8000/v1")
    (True, True)
    >>> is_loopback("https://api.example.com/v1")
    False
    """
    host = urlparse(base_url).hostname or ""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost
        return False


def resolve_api_key(api_key_env: str, base_url: str, *, setting: str) -> str:
    """The key in ``os.environ[api_key_env]``; :data:`PLACEHOLDER_KEY` for a loopback server without one.

    Args:
        api_key_env: The NAME of the environment variable (from the config), not the key.
        base_url: The server's URL.
        setting: The config key that named the variable (e.g. ``"perception.api_key_env"``), for the message.

    Raises:
        MissingAPIKeyError: The variable is unset or blank and ``base_url`` is not on this machine.
    """
    key = os.environ.get(api_key_env, "").strip()
    if key:
        return key
    if is_loopback(base_url):
        logger.info("%s is not set; using a placeholder key for the local server %s", api_key_env, base_url)
        return PLACEHOLDER_KEY
    raise MissingAPIKeyError(
        f"the environment variable {api_key_env} ({setting}) is not set; it must hold the API key for {base_url}. "
        f"Export it (export {api_key_env}=...) before the run, name another variable in {setting}, or point the "
        "base_url at a server on this machine (a local vLLM needs no key)."
    )


def openai_client(*, base_url: str, api_key: str, timeout_s: float, max_retries: int) -> Any:
    """An ``openai.OpenAI`` client (thread-safe: one connection pool shared by worker threads).

    Retries on timeouts, connection errors, 408/409/429 and 5xx are the SDK's own (exponential backoff from 0.5 s,
    honouring ``Retry-After``), ``max_retries`` times.
    """
    import openai

    return openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries)
