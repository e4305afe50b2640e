"""The consistency judges: a broken implementation, a local tiny LM built offline, an OpenAI-compatible FAKE server."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from embodied_r.openai_client import MissingAPIKeyError
from embodied_r.rewards.config import JudgeConfig
from embodied_r.rewards.consistency import make_consistency_reward
from embodied_r.rewards.judges import ConsistencyJudge, JudgeItem, LocalHFJudge, OpenAIJudge, build_judge
from tests.rewards.helpers import ABCD, QUESTION, RIGHT, WRONG


def test_a_broken_judge_implementation_counts_as_failures(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(ConsistencyJudge):
        def _complete(self, conversations: list[list[dict[str, str]]]) -> list[str | BaseException]:
            raise RuntimeError("boom")

    judge = Broken()
    with caplog.at_level(logging.WARNING, logger="embodied_r.rewards.judges"):
        assert judge.judge(QUESTION, "think") is None
    assert judge.stats.as_dict() == {"calls": 1, "failures": 1, "unparsable": 0}
    assert "boom" in caplog.text


# ---------------------------------------------------------------------------------------------------------------------
# The local judge on a tiny random causal LM built offline
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """The project's tiny random 1-layer Llama and its byte-level tokenizer with a chat template (models/tiny.py)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from embodied_r.models.tiny import build_tiny_lm

    path = build_tiny_lm(tmp_path_factory.mktemp("tiny_lm"))
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def _force_letter(model: Any, tokenizer: Any, letter: str) -> Any:
    """A copy of ``model`` whose head always emits ``letter`` (a bias on that token), to test the parsing path."""
    import copy

    import torch

    forced = copy.deepcopy(model)
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-100.0)
        head.bias[tokenizer.convert_tokens_to_ids(letter)] = 100.0
    forced.lm_head = head
    return forced


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [0.0, 0.1])
def test_local_judge_batched_returns_letters(tiny_lm: tuple[Any, Any], temperature: float) -> None:
    model, tokenizer = tiny_lm
    judge = LocalHFJudge(
        _force_letter(model, tokenizer, "B"), tokenizer, temperature=temperature, max_new_tokens=1, batch_size=2
    )
    calls = []
    original = judge.model.generate
    judge.model.generate = lambda **kw: calls.append(kw["input_ids"].shape) or original(**kw)
    reward = make_consistency_reward(judge)
    rewards = reward([RIGHT, RIGHT, RIGHT], solution=["B"] * 3, question=[QUESTION] * 3, choices=[ABCD] * 3)
    assert rewards == [1.0, 1.0, 1.0]
    assert [shape[0] for shape in calls] == [2, 1]  # batched by batch_size
    assert judge.stats.as_dict() == {"calls": 3, "failures": 0, "unparsable": 0}


@pytest.mark.slow
def test_local_judge_random_model_returns_letter_or_none_and_counts(tiny_lm: tuple[Any, Any]) -> None:
    model, tokenizer = tiny_lm
    judge = LocalHFJudge(model, tokenizer, temperature=0.1, max_new_tokens=4, batch_size=4)
    items = [JudgeItem(QUESTION, f"thought {i}", tuple(ABCD)) for i in range(3)]
    letters = judge.judge_batch(items)
    assert len(letters) == 3
    assert all(letter is None or letter in ABCD for letter in letters)
    assert judge.stats.calls == 3
    assert judge.stats.unparsable == sum(letter is None for letter in letters)
    assert judge.stats.failures == 0


@pytest.mark.slow
def test_local_judge_generate_error_is_counted(tiny_lm: tuple[Any, Any], caplog: pytest.LogCaptureFixture) -> None:
    model, tokenizer = tiny_lm
    judge = LocalHFJudge(_force_letter(model, tokenizer, "B"), tokenizer, batch_size=8)

    def explode(**kwargs: Any) -> Any:
        raise RuntimeError("CUDA out of memory (simulated)")

    judge.model.generate = explode
    with caplog.at_level(logging.WARNING, logger="embodied_r.rewards.judges"):
        rewards = make_consistency_reward(judge)([RIGHT, RIGHT], solution=["B"] * 2, question=[QUESTION] * 2)
    assert rewards == [None, None]
    assert judge.stats.as_dict() == {"calls": 2, "failures": 2, "unparsable": 0}
    assert "out of memory" in caplog.text


@pytest.mark.slow
def test_local_judge_from_pretrained_offline(tiny_lm: tuple[Any, Any], tmp_path: Any) -> None:
    model, tokenizer = tiny_lm
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    judge = build_judge(JudgeConfig(backend="local", model=str(tmp_path), max_new_tokens=2, temperature=0.0))
    assert isinstance(judge, LocalHFJudge)
    letter = judge.judge(QUESTION, "some reasoning")
    assert letter is None or letter in ABCD
    assert judge.stats.calls == 1
    assert not any(p.requires_grad for p in judge.model.parameters())  # frozen


# ---------------------------------------------------------------------------------------------------------------------
# The OpenAI-compatible judge against a fake server on 127.0.0.1
# ---------------------------------------------------------------------------------------------------------------------


class FakeOpenAIServer:
    """A fake OpenAI-compatible chat server: answers ``reply``, or HTTP 500 (echoing the key) when ``storm``."""

    def __init__(self) -> None:
        self.reply = "B"
        self.storm = False
        self.requests: list[dict[str, Any]] = []
        self.auth_headers: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                auth = self.headers.get("Authorization", "")
                server.auth_headers.append(auth)
                if server.storm:
                    payload = {"error": {"message": f"internal error for credentials {auth}", "type": "server"}}
                    self._send(500, payload, {"retry-after-ms": "5"})
                    return
                self._send(
                    200,
                    {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": server.reply},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    },
                )

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # keep the test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


SECRET = "sk-test-DO-NOT-LOG-1234567890"


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    monkeypatch.setenv("EMBODIED_R_TEST_JUDGE_KEY", SECRET)
    with FakeOpenAIServer() as server:
        yield server


def _openai_judge(server: FakeOpenAIServer, **overrides: Any) -> OpenAIJudge:
    cfg = JudgeConfig(
        backend="openai",
        base_url=server.base_url,
        model="fake-judge",
        api_key_env="EMBODIED_R_TEST_JUDGE_KEY",
        timeout_s=5,
        max_retries=1,
        **overrides,
    )
    judge = build_judge(cfg)
    assert isinstance(judge, OpenAIJudge)
    return judge


def test_openai_judge_correct_letter_gives_one(fake_openai: FakeOpenAIServer) -> None:
    judge = _openai_judge(fake_openai)
    reward = make_consistency_reward(judge)
    assert reward([RIGHT, RIGHT], solution=["B", "B"], question=[QUESTION] * 2, choices=[ABCD] * 2) == [1.0, 1.0]
    assert judge.stats.as_dict() == {"calls": 2, "failures": 0, "unparsable": 0}
    body = fake_openai.requests[0]
    assert body["model"] == "fake-judge"
    assert body["temperature"] == pytest.approx(0.1)
    assert QUESTION in body["messages"][1]["content"]
    assert fake_openai.auth_headers[0] == f"Bearer {SECRET}"  # the key came from the named env var
    assert SECRET not in repr(judge)
    fake_openai.reply = "D"
    assert reward([RIGHT], solution=["B"], question=[QUESTION], choices=[ABCD]) == [0.0]


def test_openai_judge_500_storm_is_counted_and_logged_never_a_silent_zero(
    fake_openai: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    fake_openai.storm = True
    judge = _openai_judge(fake_openai, concurrency=3)
    metrics: dict[str, float] = {}
    with caplog.at_level(logging.DEBUG):  # every logger, the SDK's and httpx's included
        rewards = make_consistency_reward(judge)(
            [RIGHT, RIGHT, RIGHT, WRONG],
            solution=["B"] * 4,
            question=[QUESTION] * 4,
            choices=[ABCD] * 4,
            log_metric=metrics.__setitem__,
        )
    assert rewards == [None, None, None, 0.0]
    assert judge.stats.as_dict() == {"calls": 3, "failures": 3, "unparsable": 0}
    assert metrics["judge/failures"] == 3.0
    assert len(fake_openai.requests) == 6  # 3 requests × (1 try + 1 retry)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "embodied_r.rewards.judges"]
    assert warnings and "3 of 3 requests failed" in warnings[0].getMessage()
    assert "[redacted]" in warnings[0].getMessage()  # the server echoed the key; it was redacted
    assert SECRET not in caplog.text
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_openai_judge_unreachable_server_fails_visibly(caplog: pytest.LogCaptureFixture) -> None:
    judge = OpenAIJudge(base_url="http://127.0.0.1:9/v1", model="m", timeout_s=1, max_retries=0)
    with caplog.at_level(logging.WARNING, logger="embodied_r.rewards.judges"):
        assert judge.judge(QUESTION, "thinking") is None
    assert judge.stats.failures == 1
    assert "APIConnectionError" in caplog.text


def test_openai_judge_refuses_a_remote_server_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The perception VLM's key policy: no placeholder key is sent to a server off this machine."""
    monkeypatch.delenv("EMBODIED_R_TEST_JUDGE_KEY", raising=False)
    cfg = JudgeConfig(
        backend="openai", base_url="https://judge.example.com/v1", model="m", api_key_env="EMBODIED_R_TEST_JUDGE_KEY"
    )
    with pytest.raises(MissingAPIKeyError, match=r"EMBODIED_R_TEST_JUDGE_KEY \(rewards\.judge\.api_key_env\)"):
        build_judge(cfg)


def test_openai_judge_on_this_machine_runs_keyless(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMBODIED_R_TEST_JUDGE_KEY", raising=False)
    with FakeOpenAIServer() as server:
        judge = _openai_judge(server)
        assert judge.judge(QUESTION, "thinking") == "B"
    assert server.auth_headers == ["Bearer EMPTY"]  # a local vLLM accepts the placeholder
