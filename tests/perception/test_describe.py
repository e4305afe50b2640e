"""The driver: cache, resume, per-item failures, modes — with the oracle and scripted fake backends."""

from __future__ import annotations

import shutil
import threading

import pytest

from embodied_r.perception import DescriptionCache, PerceptionConfig, describe_samples
from embodied_r.perception.backends import DescribeRequest, VisionLanguageModel, VLMAnswer
from embodied_r.perception.backends.oracle import OracleBackend
from tests.perception.conftest import KEYFRAME_INDICES

N_FRAMES = len(KEYFRAME_INDICES)


class CountingBackend(VisionLanguageModel):
    """Wraps the oracle; counts calls; can fail given frames or stop the run after ``interrupt_after`` calls."""

    name = "counting"

    def __init__(self, cfg: PerceptionConfig, fail_k: int | None = None, interrupt_after: int | None = None):
        self.inner = OracleBackend(cfg)
        self.calls = 0
        self.fail_k = fail_k
        self.interrupt_after = interrupt_after
        self._lock = threading.Lock()

    def describe(self, request: DescribeRequest) -> VLMAnswer:
        with self._lock:
            self.calls += 1
            calls = self.calls
        if self.interrupt_after is not None and calls > self.interrupt_after:
            raise KeyboardInterrupt
        if request.k == self.fail_k and request.video_id.endswith("v0"):
            raise TimeoutError("fake timeout after retries")
        return self.inner.describe(request)


def run(world, cfg, backend=None, cache=None):
    return describe_samples(
        world.records,
        keyframes_root=world.keyframes_root,
        videos=world.videos,
        ground_truth_root=world.gt_root,
        cfg=cfg,
        backend=backend,
        cache=cache if cache is not None else DescriptionCache(world.root / "cache"),
        progress=False,
    )


def test_per_question_describes_every_sample(world) -> None:
    cfg = PerceptionConfig()
    backend = CountingBackend(cfg)
    out = run(world, cfg, backend)
    assert out.failures == []
    assert [s.question_id for s in out.samples] == [r.question_id for r in world.records]
    assert backend.calls == out.stats["calls"] == len(world.records) * N_FRAMES
    sample = out.samples[0]
    assert sample.keyframe_indices == KEYFRAME_INDICES and [f.index for f in sample.frames] == KEYFRAME_INDICES
    assert sample.frames[0].action is None
    assert all(f.action is not None for f in sample.frames[1:])
    assert sample.prompt_version == "v1" and sample.mode == "per_question" and sample.choices == ["A", "B"]


def test_second_run_is_all_cache_hits(world) -> None:
    cfg = PerceptionConfig()
    first = run(world, cfg, CountingBackend(cfg))
    backend = CountingBackend(cfg)
    second = run(world, cfg, backend)
    assert backend.calls == 0 and second.stats["calls"] == 0
    assert second.stats["cache_hits"] == first.stats["items"]
    assert second.samples == first.samples


def test_cache_key_changes_with_settings(world) -> None:
    run(world, PerceptionConfig(), CountingBackend(PerceptionConfig()))
    other = PerceptionConfig(miss_object_prob=0.0)
    backend = CountingBackend(other)
    run(world, other, backend)
    assert backend.calls == len(world.records) * N_FRAMES


def test_resume_after_interrupt(world) -> None:
    cfg = PerceptionConfig(concurrency=2)
    with pytest.raises(KeyboardInterrupt):
        run(world, cfg, CountingBackend(cfg, interrupt_after=10))
    cache_files = list((world.root / "cache").rglob("*.json"))
    assert 8 <= len(cache_files) <= 10  # what finished before the interrupt is on disk
    assert not list((world.root / "cache").rglob("*.tmp"))
    backend = CountingBackend(cfg)
    out = run(world, cfg, backend)
    total = len(world.records) * N_FRAMES
    assert backend.calls == total - len(cache_files)
    assert out.stats["cache_hits"] == len(cache_files) and len(out.samples) == len(world.records)


def test_failed_items_are_recorded_not_cached_and_retried(world) -> None:
    cfg = PerceptionConfig()
    out = run(world, cfg, CountingBackend(cfg, fail_k=2))
    failed_ids = {f["question_id"] for f in out.failures}
    assert failed_ids == {r.question_id for r in world.records if r.video_id.endswith("v0")}
    assert all("TimeoutError" in f["error"] and "k=2" in f["error"] for f in out.failures)
    assert len(out.samples) == len(world.records) - len(failed_ids)  # the rest finished
    backend = CountingBackend(cfg)
    again = run(world, cfg, backend)
    assert backend.calls == len(failed_ids)  # only the failed (k=2, v0) items are retried
    assert again.failures == [] and len(again.samples) == len(world.records)


def test_empty_answers_are_failures(world) -> None:
    class Empty(VisionLanguageModel):
        def describe(self, request: DescribeRequest) -> VLMAnswer:
            return VLMAnswer(text="  ")

    out = run(world, PerceptionConfig(), Empty())
    assert out.samples == [] and len(out.failures) == len(world.records)
    assert "empty answer" in out.failures[0]["error"]
    assert not list((world.root / "cache").rglob("*.json"))


def test_missing_manifest_is_a_clear_failure(world) -> None:
    video_id = sorted(world.videos)[0]
    shutil.rmtree(world.keyframes_root / video_id)
    out = run(world, PerceptionConfig(), CountingBackend(PerceptionConfig()))
    errors = {f["error"] for f in out.failures}
    assert len(errors) == 1 and "no key-frame manifest" in errors.pop()
    assert {s.video_id for s in out.samples} == set(world.videos) - {video_id}


def test_per_video_mode_makes_fewer_calls(world, capsys) -> None:
    per_q = CountingBackend(PerceptionConfig())
    run(world, PerceptionConfig(), per_q, DescriptionCache(world.root / "c1"))
    cfg = PerceptionConfig(mode="per_video")
    per_v = CountingBackend(cfg)
    out = run(world, cfg, per_v, DescriptionCache(world.root / "c2"))
    with capsys.disabled():
        print(f"\nbackend calls: per_question={per_q.calls} per_video={per_v.calls} ({len(world.records)} questions)")
    assert per_v.calls == len(world.videos) * N_FRAMES < per_q.calls == len(world.records) * N_FRAMES
    assert {s.mode for s in out.samples} == {"per_video"} and len(out.samples) == len(world.records)
    by_video = {}
    for s in out.samples:  # one description shared by all questions of a video
        assert by_video.setdefault(s.video_id, s.frames) == s.frames


def test_default_backend_is_made_from_config(world) -> None:
    out = run(world, PerceptionConfig())
    assert len(out.samples) == len(world.records) and out.stats["calls"] == len(world.records) * N_FRAMES
