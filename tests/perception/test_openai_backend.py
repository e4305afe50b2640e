"""The openai backend against a FAKE OpenAI-compatible server: retries, timeouts, garbage, concurrency, the key."""

from __future__ import annotations

import base64
import logging

import pytest

from embodied_r.perception import DescriptionCache, PerceptionConfig, describe_samples
from embodied_r.perception.backends import PerceptionError, make_backend
from embodied_r.perception.backends.openai_backend import resolve_api_key
from tests.perception.conftest import KEYFRAME_INDICES
from tests.perception.fake_openai_server import DEFAULT_ANSWER, FakeOpenAIServer

SECRET = "sk-test-SECRET-0123456789"


def cfg_for(server: FakeOpenAIServer, **kw) -> PerceptionConfig:
    base = {"backend": "openai", "model": "fake-vlm", "base_url": server.base_url, "api_key_env": "FAKE_VLM_KEY",
            "max_retries": 2, "timeout_s": 5.0, "concurrency": 4}  # fmt: skip
    return PerceptionConfig(**(base | kw))


def run(world, cfg):
    return describe_samples(
        world.records, keyframes_root=world.keyframes_root, videos=world.videos, ground_truth_root=None,
        cfg=cfg, cache=DescriptionCache(world.root / "cache"), progress=False,
    )  # fmt: skip


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_VLM_KEY", SECRET)


def test_request_shape_usage_and_bearer_key(world, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeOpenAIServer() as server:
        out = run(world, cfg_for(server, mode="per_video", image_max_side=32))
    assert out.failures == [] and len(out.samples) == len(world.records)
    n = len(world.videos) * len(KEYFRAME_INDICES)
    assert out.stats["calls"] == len(server.requests) == n
    assert out.stats["prompt_tokens"] == 100 * n and out.stats["completion_tokens"] == 20 * n
    assert {r["authorization"] for r in server.requests} == {f"Bearer {SECRET}"}
    body = server.requests[0]["body"]
    assert body["model"] == "fake-vlm" and body["temperature"] == 0.1 and body["max_tokens"] == 512
    parts = body["messages"][0]["content"]
    assert parts[0]["type"] == "text" and all(p["type"] == "image_url" for p in parts[1:]) and len(parts) in (2, 3)
    url = parts[1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,") and base64.b64decode(url.split(",", 1)[1])[:2] == b"\xff\xd8"
    assert out.samples[0].frames[1].action == "move forward"
    assert DEFAULT_ANSWER.splitlines()[1][3:] in out.samples[0].frames[1].observation
    assert SECRET not in caplog.text and SECRET not in str(out.failures)


def test_retries_429_and_500_then_success(world) -> None:
    script = {1: ("status", 429), 2: ("status", 500), 3: ("status", 503)}
    with FakeOpenAIServer(lambda body, n: script.get(n, ("ok", DEFAULT_ANSWER))) as server:
        out = run(world, cfg_for(server, concurrency=1, max_retries=3))
    items = len(world.records) * len(KEYFRAME_INDICES)
    assert out.failures == [] and out.stats["calls"] == items
    assert len(server.requests) == items + 3  # three retried requests


def test_timeout_after_retries_is_a_recorded_failure(world, caplog) -> None:
    slow_question = world.records[0].question.split("\n")[0]

    def script(body: dict, n: int) -> tuple:
        text = body["messages"][0]["content"][0]["text"]
        return ("sleep", 2.0) if slow_question in text and "Two images" not in text else ("ok", DEFAULT_ANSWER)

    with FakeOpenAIServer(script) as server:
        out = run(world, cfg_for(server, timeout_s=0.3, max_retries=1, concurrency=8))
    slow_ids = {r.question_id for r in world.records if r.question.startswith(slow_question)}  # same in each video
    assert {f["question_id"] for f in out.failures} == slow_ids and len(slow_ids) == len(world.videos)
    assert all("Timeout" in f["error"] for f in out.failures)
    assert len(out.samples) == len(world.records) - len(slow_ids)
    slow_requests = [r for r in server.requests if slow_question in r["body"]["messages"][0]["content"][0]["text"]
                     and "Two images" not in r["body"]["messages"][0]["content"][0]["text"]]  # fmt: skip
    assert len(slow_requests) == 2 * len(slow_ids)  # first try + one retry each
    assert SECRET not in caplog.text


def test_garbage_parses_to_unknown_action_and_empty_is_a_failure(world) -> None:
    def script(body: dict, n: int) -> tuple:
        text = body["messages"][0]["content"][0]["text"]
        if "Two images" not in text:
            return ("ok", "A room with a chair.")
        return ("empty",) if n % 7 == 0 else ("garbage", "lorem ipsum ##!! 1")

    with FakeOpenAIServer(script) as server:
        out = run(world, cfg_for(server, concurrency=1))
    assert out.samples, "some samples have no empty answer"
    for sample in out.samples:
        assert all(f.action is None and f.observation == "lorem ipsum ##!! 1" for f in sample.frames[1:])
    assert out.failures and all("empty answer" in f["error"] for f in out.failures)


def test_concurrency_is_bounded(world) -> None:
    with FakeOpenAIServer(delay=0.05) as server:
        out = run(world, cfg_for(server, concurrency=3))
    assert out.failures == []
    assert 2 <= server.max_in_flight <= 3


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAKE_VLM_KEY")
    remote = PerceptionConfig(
        backend="openai", model="m", base_url="https://api.example.com/v1", api_key_env="FAKE_VLM_KEY"
    )
    with pytest.raises(PerceptionError, match="FAKE_VLM_KEY"):
        make_backend(remote)
    local = PerceptionConfig(
        backend="openai", model="m", base_url="http://localhost:8000/v1", api_key_env="FAKE_VLM_KEY"
    )
    assert resolve_api_key(local) == "EMPTY"


def test_config_rejects_mismatched_model() -> None:
    with pytest.raises(ValueError, match="oracle"):
        PerceptionConfig(backend="openai")
    with pytest.raises(ValueError, match="oracle"):
        PerceptionConfig(backend="oracle", model="Qwen/Qwen2.5-VL-72B-Instruct")
    with pytest.raises(ValueError):
        PerceptionConfig(unknown_key=1)
