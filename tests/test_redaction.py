"""Secrets out of error texts (embodied_r.redaction), and the judge's error log going through it."""

from __future__ import annotations

import pytest

from embodied_r.redaction import REDACTED, redact_secrets
from embodied_r.rewards.judges import OpenAIJudge

KEY = "sk-test-SECRET123456789abcdef"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            f"Error code: 401 - {{'error': {{'message': 'Incorrect API key provided: {KEY}. You can find it'}}}}",
            f"Error code: 401 - {{'error': {{'message': 'Incorrect API key provided: {REDACTED}. You can find it'}}}}",
            id="openai-401-echo",
        ),
        pytest.param("provided: sk-proj-****cdef.", f"provided: {REDACTED}.", id="masked-echo"),
        pytest.param("Authorization: Bearer abc123def", f"Authorization: Bearer {REDACTED}", id="bearer"),
        pytest.param('{"api_key": "zzz-9876"}', f'{{"api_key": "{REDACTED}"}}', id="api-key-field"),
        pytest.param("token hf_AbCdEfGhIjKlMnOp rejected", f"token {REDACTED} rejected", id="hf-token"),
        pytest.param("jwt eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl ok", f"jwt {REDACTED} ok", id="jwt"),
        pytest.param(
            "Timeout after 120s; prompt_tokens=100 max_tokens=512 task-level sk-l",
            "Timeout after 120s; prompt_tokens=100 max_tokens=512 task-level sk-l",
            id="ordinary-text-untouched",
        ),
    ],
)
def test_redact_secrets_shapes(text: str, expected: str) -> None:
    assert redact_secrets(text) == expected


def test_known_secrets_of_any_shape_are_removed_whole() -> None:
    assert redact_secrets("key my-own-key-42 and my-own-key-42x", known_secrets=["my-own-key-42", None, ""]) == (
        f"key {REDACTED} and {REDACTED}x"
    )
    assert redact_secrets("EMPTY placeholder", known_secrets=["EMPTY"]) == "EMPTY placeholder"  # too short to hide


def test_openai_judge_error_log_redacts_a_masked_echo_of_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGE_KEY_FOR_TEST", KEY)
    judge = OpenAIJudge(base_url="http://127.0.0.1:9/v1", model="m", api_key_env="JUDGE_KEY_FOR_TEST", client=object())
    error = RuntimeError(f"401 Incorrect API key provided: sk-test-****{KEY[-4:]} (sent {KEY})")
    text = judge._describe_error(error)
    assert KEY not in text and KEY[-4:] not in text and "RuntimeError: 401 Incorrect API key provided" in text
