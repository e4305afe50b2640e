"""Secrets out of error texts: the one function every error message passes before it is logged or written.

A server may echo the credential it refused (``401 Incorrect API key provided: sk-...``) and the SDKs put the
server's message into their exceptions, so an error text can carry a key into ``failures.jsonl`` (a DVC
output), Dagster's run storage and compute logs, MLflow or the terminal. :func:`redact_secrets` removes the
keys the caller knows (the value of ``api_key_env``) and anything shaped like one: ``sk-``/``sk_`` keys
(OpenAI, DashScope, Anthropic), Hugging Face ``hf_`` tokens, JSON web tokens, the value after ``Bearer`` and
after ``api_key=`` / ``"authorization": ``.

>>> redact_secrets("Error code: 401 - Incorrect API key provided: sk-test-SECRET1234567.")
'Error code: 401 - Incorrect API key provided: [redacted].'
>>> redact_secrets("Authorization: Bearer abc.def-123")
'Authorization: Bearer [redacted]'
>>> redact_secrets("token mykey-42 refused", known_secrets=["mykey-42"])
'token [redacted] refused'
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["REDACTED", "redact_secrets"]

#: What a secret is replaced with.
REDACTED = "[redacted]"

# Known secrets shorter than this are not substituted: replacing a 3-letter "key" everywhere would mangle the
# message and such a value is no credential (the local placeholder "EMPTY" is sent for servers that need none).
_MIN_KNOWN_SECRET_CHARS = 6

# Shapes of credentials, replaced whole. Masked echoes such as "sk-proj-****abcd" are caught too.
_SECRET_SHAPES = re.compile(
    r"\bsk[-_](?=[A-Za-z0-9_\-*.]{6})[A-Za-z0-9_\-*]+(?:\.[A-Za-z0-9_\-*]+)*"  # OpenAI / DashScope / Anthropic keys
    r"|\bhf_[A-Za-z0-9]{10,}"  # Hugging Face tokens
    r"|\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"  # JSON web tokens
)
# A credential after a label: "Bearer xyz", "api_key=xyz", "'Authorization': 'xyz'", "x-api-key: xyz".
_AFTER_LABEL = re.compile(
    r"(?P<label>\bbearer\s+"
    r"|\b(?:api[_-]?key|access[_-]?token|auth[_-]?token|authorization|x-api-key|token)['\"]?\s*[:=]\s*['\"]?"
    r"(?:bearer\s+)?)"
    r"(?P<value>(?=[A-Za-z0-9_\-.~+/=*]{4})[A-Za-z0-9_\-~+/=*]+(?:\.[A-Za-z0-9_\-~+/=*]+)*)",
    re.IGNORECASE,
)


def redact_secrets(text: str, known_secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every known secret and anything shaped like a credential replaced by ``[redacted]``.

    Args:
        text: An error message (or any text about to be logged or written).
        known_secrets: Values that must not appear, e.g. the API key read from the environment; empty,
            ``None`` and very short values are ignored.
    """
    # Longest first, so a key that contains another known value is removed whole.
    for secret in sorted({s for s in known_secrets if s}, key=len, reverse=True):
        if len(secret) >= _MIN_KNOWN_SECRET_CHARS:
            text = text.replace(secret, REDACTED)
    text = _AFTER_LABEL.sub(lambda m: m.group("label") + REDACTED, text)
    return _SECRET_SHAPES.sub(REDACTED, text)
