"""The one key policy for OpenAI-compatible servers, shared by the perception VLM and the consistency judge."""

from __future__ import annotations

import pytest

from embodied_r.errors import UserError
from embodied_r.openai_client import PLACEHOLDER_KEY, MissingAPIKeyError, is_loopback, resolve_api_key
from embodied_r.perception.backends import PerceptionError
from embodied_r.perception.backends.openai_backend import resolve_api_key as perception_key
from embodied_r.perception.config import PerceptionConfig
from embodied_r.rewards.config import JudgeConfig
from embodied_r.rewards.judges import build_judge

ENV = "EMBODIED_R_TEST_CLIENT_KEY"


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://localhost:8000/v1", True),
        ("http://127.0.0.1:8000/v1", True),
        ("http://127.0.0.2:8000/v1", True),  # all of 127.0.0.0/8 is this machine
        ("http://[::1]:8000/v1", True),
        ("http://0.0.0.0:8000/v1", True),
        ("https://api.example.com/v1", False),
        ("http://10.0.0.7:8000/v1", False),  # a vLLM on another machine of the cluster needs its key
        ("http://localhost.example.com/v1", False),
        ("not a url", False),
    ],
)
def test_is_loopback(url: str, loopback: bool) -> None:
    assert is_loopback(url) is loopback


def test_key_comes_from_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "  sk-from-env-0123456789  ")
    assert resolve_api_key(ENV, "https://api.example.com/v1", setting="x.api_key_env") == "sk-from-env-0123456789"


def test_missing_key_loopback_placeholder_remote_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "   ")  # blank counts as unset
    assert resolve_api_key(ENV, "http://127.0.0.1:8000/v1", setting="x.api_key_env") == PLACEHOLDER_KEY == "EMPTY"
    with pytest.raises(MissingAPIKeyError) as info:
        resolve_api_key(ENV, "https://api.example.com/v1", setting="x.api_key_env")
    message = str(info.value)
    assert f"{ENV} (x.api_key_env) is not set" in message and "https://api.example.com/v1" in message
    assert f"export {ENV}=" in message  # the fix
    assert isinstance(info.value, UserError)  # printed as its message alone by the command line


def test_perception_and_judge_share_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both refuse a remote server without a key, both run keyless on this machine, by the same rule."""
    monkeypatch.delenv(ENV, raising=False)
    remote, local = "https://vlm.example.com/v1", "http://127.0.0.2:8000/v1"

    def vlm(url: str) -> PerceptionConfig:
        return PerceptionConfig(backend="openai", model="m", base_url=url, api_key_env=ENV)

    def judge(url: str) -> JudgeConfig:
        return JudgeConfig(backend="openai", model="m", base_url=url, api_key_env=ENV)

    with pytest.raises(PerceptionError, match=rf"{ENV} \(perception\.api_key_env\) is not set"):
        perception_key(vlm(remote))
    with pytest.raises(MissingAPIKeyError, match=rf"{ENV} \(rewards\.judge\.api_key_env\) is not set"):
        build_judge(judge(remote))
    assert perception_key(vlm(local)) == "EMPTY"
    assert build_judge(judge(local)) is not None
