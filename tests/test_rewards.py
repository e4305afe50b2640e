"""The GRPO rewards (reference §5): format, accuracy, consistency and its judges, the weight schedule, config."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import ValidationError

from embodied_r.rewards import (
    REWARD_FACTORIES,
    ConsistencyJudge,
    JudgeConfig,
    JudgeItem,
    LocalHFJudge,
    OpenAIJudge,
    RewardSchedule,
    RewardsConfig,
    RewardStage,
    accuracy_reward,
    build_judge,
    build_reward_funcs,
    completion_text,
    format_reward,
    judge_messages,
    make_accuracy_reward,
    make_consistency_reward,
    make_format_reward,
    progress_from_trainer_state,
)
from embodied_r.rewards.schedule import weights_for

ABCD = ["A", "B", "C", "D"]
QUESTION = "Question: Where is the red chair?\nA. left\nB. right\nC. ahead\nD. behind"
LONG_THINK = "I move forward and look around. " * 400

# (completion, strict format, format with partial_credit=0.5, accuracy answer_tag, accuracy official_scan)
# for a row whose solution is "B" and choices A–D.
TABLE = [
    pytest.param("<think>The sofa is left of me.</think><answer>B</answer>", 1, 1, 1, 1, id="clean"),
    pytest.param("\n  <think>\nreasoning\n</think>\n\n<answer> B </answer>\n", 1, 1, 1, 1, id="whitespace"),
    pytest.param("<think>I thought C. Then I turned.</think><answer>B</answer>", 1, 1, 1, 0, id="think-C-wins"),
    pytest.param("<think>Option B. is tempting</think><answer>A</answer>", 1, 1, 0, 1, id="think-B-wins"),
    pytest.param("<think>hmm</think><answer></answer>", 0, 0.5, 0, 0, id="empty-answer"),
    pytest.param("<think>   </think><answer>B</answer>", 0, 0.5, 1, 1, id="blank-think"),
    pytest.param("<think>x</think><answer>A</answer><answer>B</answer>", 0, 0.5, 1, 1, id="repeated-answer"),
    pytest.param("<think>x</think><think>y</think><answer>B</answer>", 0, 0.5, 1, 1, id="repeated-think"),
    pytest.param("<think>x</think><answer>b</answer>", 1, 1, 1, 1, id="lower-case-lone"),
    pytest.param("<think>x</think><answer>b. the red chair</answer>", 1, 1, 0, 1, id="lower-case-with-text"),
    pytest.param("<think>x</think><answer>(B)</answer>", 1, 1, 1, 1, id="parenthesised"),
    pytest.param("<think>x</think><answer>B. The red chair</answer>", 1, 1, 1, 1, id="letter-dot-text"),
    pytest.param("<think>x</think><answer>B</answer> I hope this helps.", 0, 0.5, 1, 1, id="text-after"),
    pytest.param("Sure! <think>x</think><answer>B</answer>", 0, 0.5, 1, 1, id="text-before"),
    pytest.param("<think>x</think> so <answer>B</answer>", 0, 0.5, 1, 1, id="text-between"),
    pytest.param("<answer>B</answer>", 0, 0.25, 1, 1, id="missing-think"),
    pytest.param("<think>B is right</think>", 0, 0.25, 0, 1, id="missing-answer"),
    pytest.param("<think>x</think><answer>B", 0, 0.25, 0, 1, id="unclosed-answer"),
    pytest.param("<think>x<answer>B</answer>", 0, 0.25, 1, 1, id="unclosed-think"),
    pytest.param("<think><think>x</think></think><answer>B</answer>", 0, 0.5, 1, 1, id="nested-think"),
    pytest.param("<think>x</think><answer><answer>B</answer></answer>", 0, 0.5, 1, 1, id="nested-answer"),
    pytest.param("<answer>B</answer><think>x</think>", 0, 0.25, 1, 1, id="wrong-order"),
    pytest.param("<THINK>x</THINK><ANSWER>B</ANSWER>", 0, 0, 0, 1, id="upper-case-tags"),
    pytest.param("<think>x</think><answer>E</answer>", 1, 1, 0, 0, id="not-among-choices"),
    pytest.param("<think>x</think><answer>A or B</answer>", 1, 1, 0, 1, id="a-or-b"),
    pytest.param("<think>x</think><answer>（Ｂ）</answer>", 1, 1, 1, 0, id="fullwidth"),
    pytest.param("<think>Überlegung → links</think><answer>B</answer>", 1, 1, 1, 1, id="unicode-think"),
    pytest.param(f"<think>{LONG_THINK}</think><answer>B</answer>", 1, 1, 1, 1, id="very-long-think"),
    pytest.param("<think>so $\\boxed{D}$</think><answer>B</answer>", 1, 1, 1, 0, id="boxed-in-think"),
    pytest.param("<think>x</think><answer>Answer: C</answer>", 1, 1, 0, 0, id="wrong-letter"),
    pytest.param("", 0, 0, 0, 0, id="empty"),
    pytest.param("The answer is B.", 0, 0, 0, 1, id="no-tags"),
]


@pytest.mark.parametrize(("text", "fmt", "fmt_partial", "acc_tag", "acc_scan"), TABLE)
def test_format_and_accuracy_table(text: str, fmt: float, fmt_partial: float, acc_tag: float, acc_scan: float) -> None:
    kwargs = {"solution": ["B"], "choices": [ABCD]}
    assert format_reward([text], **kwargs) == [fmt]
    assert make_format_reward(partial_credit=0.5)([text], **kwargs) == [fmt_partial]
    assert accuracy_reward([text], **kwargs) == [acc_tag]
    assert make_accuracy_reward("official_scan")([text], **kwargs) == [acc_scan]


def test_conversational_completions_equal_plain_ones() -> None:
    texts = ["<think>x</think><answer>B</answer>", "<think>x</think><answer>C</answer>"]
    convs = [[{"role": "assistant", "content": t}] for t in texts]
    parts = [[{"role": "assistant", "content": [{"type": "text", "text": t}]}] for t in texts]
    kwargs = {"solution": ["B", "B"], "choices": [ABCD, ABCD]}
    assert accuracy_reward(convs, **kwargs) == accuracy_reward(texts, **kwargs) == accuracy_reward(parts, **kwargs)
    assert format_reward(convs, **kwargs) == [1.0, 1.0]
    assert completion_text(parts[0]) == texts[0]


def test_accuracy_numeric_rows_use_mra_and_missing_choices_are_inferred() -> None:
    completions = ["<think>x</think><answer>12</answer>", "<think>x</think><answer>B</answer>", "<answer>3</answer>"]
    # Row 0 numeric (empty choices), row 1 multiple choice, row 2 numeric with no <think>: MRA still applies.
    assert accuracy_reward(completions, solution=["10", "B", "3.0"], choices=[[], ABCD, []]) == [0.7, 1.0, 1.0]
    # Without a choices column: a letter solution means A–H, anything else is numeric.
    assert accuracy_reward(completions, solution=["10", "B", "3"]) == [0.7, 1.0, 1.0]
    with pytest.raises(ValueError, match="non-numeric solution"):
        accuracy_reward(["<answer>3</answer>"], solution=["three"], choices=[[]])


def test_answer_text_accuracy_reads_option_texts_from_the_question_column() -> None:
    completions = [f"<think>x</think><answer>{a}</answer>" for a in ("Right", "B", "left", "right, maybe")]
    text_reward = make_accuracy_reward("answer_text")
    assert text_reward(completions, solution=["B"] * 4, question=[QUESTION] * 4, choices=[ABCD] * 4) == [
        1.0, 1.0, 0.0, 0.0,
    ]  # fmt: skip
    # The paper's reading ignores option texts; answer_text without the question column fails loudly.
    assert make_accuracy_reward("answer_tag")(completions, solution=["B"] * 4, question=[QUESTION] * 4) == [0, 1, 0, 0]
    with pytest.raises(ValueError, match="needs the question"):
        text_reward(completions[:1], solution=["B"])
    with pytest.raises(ValueError, match="accuracy mode must be one of"):
        make_accuracy_reward("text")  # type: ignore[arg-type]


def test_rewards_accept_trl_keyword_arguments_and_have_stable_names() -> None:
    from trl.trainer.utils import get_callable_name

    judge = ScriptedJudge(["B"])
    funcs, names = build_reward_funcs(RewardsConfig(), judge=judge)
    assert names == ["format", "accuracy", "consistency"]
    assert [get_callable_name(f) for f in funcs] == names
    trl_kwargs = {  # what GRPOTrainer._calculate_rewards passes
        "prompts": [[{"role": "user", "content": "video text ... " + QUESTION}]],
        "completions": [[{"role": "assistant", "content": "<think>It is on my right.</think><answer>B</answer>"}]],
        "completion_ids": [[1, 2, 3]],
        "solution": ["B"],
        "question": [QUESTION],
        "choices": [ABCD],
        "category": ["object_rel_direction"],
        "trainer_state": None,
        "log_extra": lambda column, values: None,
        "log_metric": lambda name, value: None,
    }
    assert [f(**trl_kwargs) for f in funcs] == [[1.0], [1.0], [1.0]]


def test_registry_names_factories() -> None:
    assert set(REWARD_FACTORIES) == {"format", "accuracy", "consistency"}
    assert REWARD_FACTORIES["format"](0.5).partial_credit == 0.5
    assert REWARD_FACTORIES["accuracy"]("official_scan").mode == "official_scan"
    with pytest.raises(ValueError):
        make_format_reward(partial_credit=2.0)
    with pytest.raises(ValueError):
        make_accuracy_reward("anywhere")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------------
# Consistency with a test double of the judge
# ---------------------------------------------------------------------------------------------------------------------


class ScriptedJudge(ConsistencyJudge):
    """A fake judge: replies from a script (an exception in the script is a failed request); records requests."""

    name = "scripted"

    def __init__(self, replies: list[str | BaseException]) -> None:
        super().__init__()
        self.replies = list(replies)
        self.requests: list[list[dict[str, str]]] = []

    def _complete(self, conversations: list[list[dict[str, str]]]) -> list[str | BaseException]:
        self.requests.extend(conversations)
        out, self.replies = self.replies[: len(conversations)], self.replies[len(conversations) :]
        return out


RIGHT = "<think>The chair stayed on my right after I rotated.</think><answer>B</answer>"
WRONG = "<think>The chair is ahead.</think><answer>C</answer>"
NO_THINK = "<answer>B</answer>"


@pytest.mark.parametrize(
    ("completion", "replies", "expected", "calls", "failures", "unparsable"),
    [
        pytest.param(RIGHT, ["B"], 1.0, 1, 0, 0, id="judge-agrees"),
        pytest.param(RIGHT, [" (B).\n"], 1.0, 1, 0, 0, id="judge-agrees-decorated"),
        pytest.param(RIGHT, ["C"], 0.0, 1, 0, 0, id="judge-disagrees"),
        pytest.param(WRONG, [], 0.0, 0, 0, 0, id="wrong-answer-not-judged"),
        pytest.param(NO_THINK, [], 0.0, 0, 0, 0, id="no-think-not-judged"),
        pytest.param("<think>  </think><answer>B</answer>", [], 0.0, 0, 0, 0, id="blank-think-not-judged"),
        pytest.param(RIGHT, [TimeoutError("judge timed out")], None, 1, 1, 0, id="judge-failure-is-none"),
        pytest.param(RIGHT, ["I cannot tell."], None, 1, 0, 1, id="judge-unparsable-is-none"),
        pytest.param(RIGHT, ["E"], None, 1, 0, 1, id="judge-letter-not-among-choices"),
    ],
)
def test_consistency_table(
    completion: str,
    replies: list[Any],
    expected: float | None,
    calls: int,
    failures: int,
    unparsable: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    judge = ScriptedJudge(replies)
    reward = make_consistency_reward(judge)
    with caplog.at_level(logging.WARNING, logger="embodied_r.rewards"):
        assert reward([completion], solution=["B"], question=[QUESTION], choices=[ABCD]) == [expected]
    assert judge.stats.as_dict() == {"calls": calls, "failures": failures, "unparsable": unparsable}
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert bool(warned) == bool(failures or unparsable)


def test_judge_sees_only_question_and_think() -> None:
    judge = ScriptedJudge(["B"])
    make_consistency_reward(judge)(
        [RIGHT],
        solution=["B"],
        question=[QUESTION],
        choices=[ABCD],
        prompts=[[{"role": "user", "content": "Frame 0: Observe: SECRET VIDEO TEXT"}]],
    )
    (request,) = judge.requests
    sent = "\n".join(m["content"] for m in request)
    assert QUESTION in sent
    assert "The chair stayed on my right after I rotated." in sent
    assert "SECRET VIDEO TEXT" not in sent
    assert "<answer>" not in sent  # the policy's answer is not shown
    assert request == judge_messages(JudgeItem(QUESTION, "The chair stayed on my right after I rotated.", tuple(ABCD)))


def test_consistency_batches_a_group_and_reports_metrics() -> None:
    judge = ScriptedJudge(["B", RuntimeError("HTTP 500"), "B"])
    metrics: dict[str, float] = {}
    extra: dict[str, list[str]] = {}
    completions = [RIGHT, WRONG, RIGHT, NO_THINK, RIGHT, "<think>x</think><answer>7</answer>"]
    rewards = make_consistency_reward(judge)(
        completions,
        solution=["B"] * 5 + ["7"],
        question=[QUESTION] * 6,
        choices=[ABCD] * 5 + [[]],
        log_metric=metrics.__setitem__,
        log_extra=extra.__setitem__,
    )
    assert rewards == [1.0, 0.0, None, 0.0, 1.0, None]  # failed request → None; numeric row → None
    assert len(judge.requests) == 3  # one batch, only the correct answers with a think
    assert metrics == {
        "judge/calls": 3.0,
        "judge/failures": 1.0,
        "judge/unparsable": 0.0,
        "judge/failure_rate": pytest.approx(1 / 3),
    }
    assert extra == {"judge_letter": ["B", "", "", "", "B", ""]}


def test_consistency_official_scan_mode_uses_the_scan_for_correctness() -> None:
    text = "<think>It is B. Surely.</think><answer>C</answer>"
    judge = ScriptedJudge(["B"])
    reward = make_consistency_reward(judge, mode="official_scan")
    assert reward([text], solution=["B"], question=[QUESTION], choices=[ABCD]) == [1.0]
    assert make_consistency_reward(ScriptedJudge([]))([text], solution=["B"], question=[QUESTION], choices=[ABCD]) == [
        0.0
    ]


def test_consistency_needs_the_question_column() -> None:
    with pytest.raises(ValueError, match="question"):
        make_consistency_reward(ScriptedJudge(["B"]))([RIGHT], solution=["B"], choices=[ABCD])


class FakeTrainerState:
    """The three fields of transformers.TrainerState the rewards read."""

    def __init__(self, global_step: int, max_steps: int, epoch: float) -> None:
        self.global_step, self.max_steps, self.epoch = global_step, max_steps, epoch


def test_consistency_skips_the_judge_while_unweighted() -> None:
    judge = ScriptedJudge(["B"])
    reward = make_consistency_reward(judge, schedule=RewardSchedule.paper())
    kwargs = {"solution": ["B"], "question": [QUESTION], "choices": [ABCD]}
    assert reward([RIGHT], trainer_state=FakeTrainerState(10, 120, 1.0), **kwargs) == [None]
    assert judge.stats.calls == 0
    assert reward([RIGHT], trainer_state=FakeTrainerState(60, 120, 6.0), **kwargs) == [1.0]
    assert judge.stats.calls == 1
    eager = make_consistency_reward(ScriptedJudge(["B"]), schedule=RewardSchedule.paper(), skip_when_unweighted=False)
    assert eager([RIGHT], trainer_state=FakeTrainerState(10, 120, 1.0), **kwargs) == [1.0]


def test_a_broken_judge_implementation_counts_as_failures(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(ConsistencyJudge):
        def _complete(self, conversations: list[list[dict[str, str]]]) -> list[str | BaseException]:
            raise RuntimeError("boom")

    judge = Broken()
    with caplog.at_level(logging.WARNING, logger="embodied_r.rewards"):
        assert judge.judge(QUESTION, "think") is None
    assert judge.stats.as_dict() == {"calls": 1, "failures": 1, "unparsable": 0}
    assert "boom" in caplog.text


# ---------------------------------------------------------------------------------------------------------------------
# The local judge on a tiny random causal LM built offline
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_lm() -> tuple[Any, Any]:
    """A randomly initialised 1-layer Llama and a character-level tokenizer with a chat template."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate([chr(i) for i in range(32, 127)] + ["\n", "[UNK]"])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(["<|pad|>", "<|end|>"])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|end|>", pad_token="<|pad|>", unk_token="[UNK]"
    )
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    return model, tokenizer


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
    with caplog.at_level(logging.WARNING, logger="embodied_r.rewards"):
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
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "embodied_r.rewards"]
    assert warnings and "3 of 3 requests failed" in warnings[0].getMessage()
    assert "[redacted]" in warnings[0].getMessage()  # the server echoed the key; it was redacted
    assert SECRET not in caplog.text
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_openai_judge_unreachable_server_fails_visibly(caplog: pytest.LogCaptureFixture) -> None:
    judge = OpenAIJudge(base_url="http://127.0.0.1:9/v1", model="m", timeout_s=1, max_retries=0)
    with caplog.at_level(logging.WARNING, logger="embodied_r.rewards"):
        assert judge.judge(QUESTION, "thinking") is None
    assert judge.stats.failures == 1
    assert "APIConnectionError" in caplog.text


# ---------------------------------------------------------------------------------------------------------------------
# Weight schedule
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (0.0, (7, 3, 0)),
        (1.0, (7, 3, 0)),
        (1.99, (7, 3, 0)),
        (2.0, (3, 7, 0)),  # two epochs done: the paper's epoch 3 begins
        (2.01, (3, 7, 0)),
        (4.0, (1, 7, 2)),
        (5.0, (1, 7, 2)),
        (12.0, (1, 7, 2)),
        (13.0, (1, 7, 2)),  # past the plan: the last stage holds
    ],
)
def test_schedule_at_epoch_boundaries(epoch: float, expected: tuple[int, int, int]) -> None:
    schedule = RewardSchedule.paper(unit="epoch")
    assert schedule.weights_at(epoch=epoch, normalise=False) == expected
    assert schedule.weights_at(epoch=epoch) == pytest.approx(tuple(w / 10 for w in expected))


@pytest.mark.parametrize(
    ("step", "max_steps", "expected"),
    [
        (0, 120, (7, 3, 0)),
        (19, 120, (7, 3, 0)),
        (20, 120, (3, 7, 0)),  # 20/120 == 2/12
        (39, 120, (3, 7, 0)),
        (40, 120, (1, 7, 2)),
        (120, 120, (1, 7, 2)),
        (1, 6, (3, 7, 0)),  # a 6-step smoke run keeps the proportions
        (2, 6, (1, 7, 2)),
    ],
)
def test_schedule_at_step_fractions(step: int, max_steps: int, expected: tuple[int, int, int]) -> None:
    schedule = RewardSchedule.paper()
    epoch, fraction = progress_from_trainer_state(FakeTrainerState(step, max_steps, 0.0))
    assert schedule.weights_at(epoch=epoch, step_fraction=fraction, normalise=False) == expected


def test_schedule_weights_for_names_and_validation() -> None:
    schedule = RewardSchedule.paper()
    assert weights_for(schedule, ["format", "accuracy", "consistency"], step_fraction=0.9) == pytest.approx(
        [0.1, 0.7, 0.2]
    )  # the official launch's --reward_weights (format 0.1, accuracy 0.7, consistency 0.2)
    assert weights_for(schedule, ["format", "accuracy"], step_fraction=0.0) == pytest.approx([0.7, 0.3])
    with pytest.raises(ValueError, match="step_fraction"):
        schedule.weights_at(epoch=3.0)
    with pytest.raises(ValidationError, match="same unit"):
        RewardSchedule(
            [RewardStage(until_epoch=2, weights=(1, 1, 0)), RewardStage(until_fraction=1, weights=(1, 1, 0))]
        )
    with pytest.raises(ValidationError, match="increase"):
        RewardSchedule([RewardStage(until_epoch=4, weights=(1, 1, 0)), RewardStage(until_epoch=2, weights=(1, 1, 0))])
    with pytest.raises(ValidationError, match=r"1\.0"):
        RewardSchedule([RewardStage(until_fraction=0.5, weights=(1, 1, 0))])
    with pytest.raises(ValidationError, match="exactly one"):
        RewardStage(weights=(1, 1, 0))
    with pytest.raises(ValidationError, match="all be 0"):
        RewardStage(until_fraction=1, weights=(0, 0, 0))


def test_schedule_fractions_from_yaml_strings() -> None:
    cfg = RewardsConfig.model_validate(
        {
            "schedule": [
                {"until_fraction": "2/12", "weights": [7, 3, 0]},
                {"until_fraction": "4/12", "weights": [3, 7, 0]},
                {"until_fraction": 1, "weights": [1, 7, 2]},
            ]
        }
    )
    assert cfg.schedule == RewardSchedule.paper()


# ---------------------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------------------


def test_rewards_config_defaults_are_the_paper() -> None:
    cfg = RewardsConfig()
    assert cfg.format_partial_credit == 0.0
    assert cfg.accuracy_mode == "answer_tag"
    assert cfg.schedule == RewardSchedule.paper()
    assert cfg.judge.backend == "policy_init"
    assert cfg.judge.temperature == 0.1
    with pytest.raises(ValidationError):
        RewardsConfig(unknown_key=1)  # type: ignore[call-arg]


def test_rewards_config_validation_errors() -> None:
    with pytest.raises(ValidationError, match=r"judge\.backend is 'none'"):
        RewardsConfig(judge=JudgeConfig(backend="none"))
    with pytest.raises(ValidationError, match="base_url"):
        JudgeConfig(backend="openai", model="m")
    with pytest.raises(ValidationError, match="checkpoint path"):
        JudgeConfig(backend="local")
    with pytest.raises(ValidationError, match="environment variable") as info:
        JudgeConfig(api_key_env="sk-live-123")
    assert "sk-live-123" not in str(info.value)  # a key pasted by mistake is not echoed


def test_build_reward_funcs_without_a_judge() -> None:
    cfg = RewardsConfig(schedule=RewardSchedule.constant((1.0, 1.0, 0.0)), judge=JudgeConfig(backend="none"))
    funcs, names = build_reward_funcs(cfg)
    assert names == ["format", "accuracy"] == [f.__name__ for f in funcs]
    assert weights_for(cfg.schedule, names, step_fraction=0.3) == [0.5, 0.5]
    with pytest.raises(ValueError, match="policy_model_path"):
        build_reward_funcs(RewardsConfig())


# ---------------------------------------------------------------------------------------------------------------------
# Contract with the pinned TRL: its own reward-calling code, on a stand-in trainer
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_trl_calculate_rewards_turns_a_failed_judge_into_nan_and_logs_its_counts() -> None:
    """``GRPOTrainer._calculate_rewards`` (TRL 1.16) on our functions: None → NaN, counts → trainer metrics."""
    from collections import defaultdict
    from types import SimpleNamespace

    from accelerate import Accelerator
    from transformers import TrainerState
    from trl import GRPOTrainer

    funcs, names = build_reward_funcs(RewardsConfig(), judge=ScriptedJudge([RuntimeError("judge down")]))
    metrics: dict[str, list[float]] = defaultdict(list)
    trainer = SimpleNamespace(
        accelerator=Accelerator(cpu=True),
        args=SimpleNamespace(report_to=[]),
        state=TrainerState(global_step=100, max_steps=120, epoch=10.0),  # stage 1:7:2, the judge is asked
        reward_funcs=funcs,
        reward_processing_classes=[None] * len(funcs),
        reward_func_names=names,
        environments=None,
        _log_completion_extra=lambda column, values: None,
        _log_metric=lambda name, value: metrics[name].append(value),
    )
    row = {
        "prompt": [{"role": "user", "content": "video text"}],
        "solution": "B",
        "question": QUESTION,
        "choices": ABCD,
    }
    completions = [[{"role": "assistant", "content": RIGHT}], [{"role": "assistant", "content": WRONG}]]
    rewards = GRPOTrainer._calculate_rewards(trainer, [row, row], [row["prompt"]] * 2, completions, [[1], [2]])
    assert rewards[0, :2].tolist() == [1.0, 1.0] and rewards[0, 2].isnan()  # the failed judge call: NaN, not 0
    assert rewards[1].tolist() == [1.0, 0.0, 0.0]
    assert metrics["judge/failures"] == [1.0] and metrics["judge/calls"] == [1.0]
