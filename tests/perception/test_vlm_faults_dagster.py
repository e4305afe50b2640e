"""VLM faults through ``vlm_descriptions`` and its blocking checks, on a real Dagster instance and a FAKE VLM server.

An answer that fails the data checks is re-asked on the next run (not served from the cache), up to
``perception.max_attempts``, then reported; a 401 that echoes the API key leaves no trace of it anywhere.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from embodied_r.perception.stage import FAILURES, read_samples
from embodied_r.validation.answer_checks import INVALID_ANSWERS
from tests.orchestration.conftest import TinyPipeline
from tests.perception.fake_openai_server import DEFAULT_ANSWER, REFUSAL, FakeOpenAIServer

SECRET = "sk-test-SECRET1234567890abcdef"


class Vlm:
    """The fake server's script: refuse every request about ``refused_stem`` while ``refusing``."""

    def __init__(self) -> None:
        self.refusing = True
        self.refused_stem = ""

    def __call__(self, body: dict, n: int) -> tuple:
        text = body["messages"][0]["content"][0]["text"]
        if self.refusing and self.refused_stem and self.refused_stem in text:
            return ("refuse",)
        return ("ok", DEFAULT_ANSWER)


def _pipeline(root: Path, server: FakeOpenAIServer, **perception) -> TinyPipeline:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["perception"].update(
        {"backend": "openai", "model": "fake-vlm", "base_url": server.base_url, "api_key_env": "FAKE_VLM_KEY",
         "max_retries": 0, "timeout_s": 20.0, "concurrency": 4, **perception}
    )  # fmt: skip
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    pipeline = TinyPipeline(root)
    pipeline.materialize_keyframes()
    return pipeline


def _first_question(root: Path) -> tuple[str, set[str]]:
    """The first record's question stem and the ids of the questions asking it."""
    records = [json.loads(line) for line in (root / "data" / "raw" / "records.jsonl").read_text().splitlines()]
    stem = records[0]["question"].split("\n")[0]
    return stem, {r["question_id"] for r in records if r["question"].split("\n")[0] == stem}


def _step_failure(result) -> str:
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    return failure.step_failure_data.user_failure_data.description


@pytest.mark.slow
def test_refused_answers_block_the_checks_then_are_reasked_and_the_rerun_passes(tiny_project, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_VLM_KEY", SECRET)
    vlm = Vlm()
    with FakeOpenAIServer(vlm) as server:
        pipeline = _pipeline(tiny_project, server)
        vlm.refused_stem, refused_ids = _first_question(tiny_project)
        first = pipeline.materialize(["vlm_descriptions"], raise_on_error=False)
        assert not first.success, "the refusals reach the blocking checks"
        failed = [c for c in first.get_asset_check_evaluations() if not c.passed]
        assert [c.check_name for c in failed] == ["descriptions"]
        assert "will be re-asked on the next run instead of served from the cache" in failed[0].description
        out = tiny_project / "data" / "descriptions"
        invalid = [json.loads(line) for line in (out / INVALID_ANSWERS).read_text().splitlines()]
        assert invalid and {q for e in invalid for q in e["question_ids"]} == refused_ids
        n_bad = len(invalid)

        vlm.refusing = False  # the VLM answers well now
        asked_before = len(server.requests)
        second = pipeline.materialize(["vlm_descriptions"])
        assert second.success and all(c.passed for c in second.get_asset_check_evaluations())
        assert len(server.requests) - asked_before == n_bad, "only the refused answers were asked again"
        meta = second.asset_materializations_for_node("vlm_descriptions")[0].metadata
        assert meta["reasked_answers"].value == n_bad and meta["invalid_vlm_answers"].value == 0
        samples = read_samples(out / "samples.jsonl")
        assert {s.question_id for s in samples} >= refused_ids
        assert not any(f.raw == REFUSAL for s in samples for f in s.frames)
        assert (out / INVALID_ANSWERS).read_text() == ""


@pytest.mark.slow
def test_refused_answers_are_reported_after_the_last_attempt_not_asked_forever(tiny_project, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_VLM_KEY", SECRET)
    vlm = Vlm()
    with FakeOpenAIServer(vlm) as server:
        pipeline = _pipeline(tiny_project, server, max_attempts=1)
        vlm.refused_stem, refused_ids = _first_question(tiny_project)
        first = pipeline.materialize(["vlm_descriptions"], raise_on_error=False)
        assert not first.success
        message = _step_failure(first)
        assert "stay failing after 1 attempts and are not asked again" in message
        assert "perception.max_failed_share" in message

        params = yaml.safe_load((tiny_project / "params.yaml").read_text())
        params["perception"]["max_failed_share"] = 0.5  # accept dropping them
        (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
        asked_before = len(server.requests)
        second = pipeline.materialize(["vlm_descriptions"])
        assert second.success and all(c.passed for c in second.get_asset_check_evaluations())
        assert len(server.requests) == asked_before, "not asked again after perception.max_attempts"
    out = tiny_project / "data" / "descriptions"
    failures = [json.loads(line) for line in (out / FAILURES).read_text().splitlines()]
    assert {f["question_id"] for f in failures} == refused_ids
    assert all("in all 1 attempts" in f["error"] for f in failures)
    assert refused_ids.isdisjoint(s.question_id for s in read_samples(out / "samples.jsonl"))


@pytest.mark.slow
def test_a_401_echoing_the_key_leaves_no_trace_in_failures_logs_or_run_storage(
    tiny_project, monkeypatch, caplog, capsys
) -> None:
    monkeypatch.setenv("FAKE_VLM_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    with FakeOpenAIServer(lambda body, n: ("echo_key",)) as server:
        pipeline = _pipeline(tiny_project, server)
        result = pipeline.materialize(["vlm_descriptions"], raise_on_error=False)
    assert not result.success and {r["authorization"] for r in server.requests} == {f"Bearer {SECRET}"}
    assert "could not be described" in _step_failure(result)
    failures = (tiny_project / "data" / "descriptions" / FAILURES).read_text()
    assert "401 - Incorrect API key provided: [redacted]" in failures  # the cause stays readable
    run_storage = [
        repr(entry) for run in pipeline.instance.get_runs() for entry in pipeline.instance.all_logs(run.run_id)
    ]
    assert any("[redacted]" in text for text in run_storage)  # the failures' metadata and warnings are in there
    printed = capsys.readouterr()
    for where, text in {
        "failures.jsonl": failures,
        "logs": caplog.text,
        "Dagster run storage": "\n".join(run_storage),
        "stdout": printed.out,
        "stderr": printed.err,
    }.items():
        assert "SECRET" not in text, f"the key leaked into {where}"
