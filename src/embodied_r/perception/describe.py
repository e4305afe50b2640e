"""The perception driver: key frames + questions → :class:`DescribedSample` per question (no Dagster here).

Per-question mode (the paper): for each question, key frame 0 alone and each pair (k−1, k) is one VLM call
with that question in the prompt. Per-video mode: one call per (video, key frame or pair) naming all of the
video's questions, shared by its samples. Identical requests (same cache key) are made once.

Every answer goes to the content-addressed cache as soon as it arrives, so an interrupted run resumes where it
stopped. A failed item (the SDK's retries exhausted, an empty answer, a missing ground truth, ...) is recorded
and not cached — the next run retries it — and never aborts the batch; its questions are reported in
``failures``. Only ``KeyboardInterrupt``/``SystemExit`` stop the run (pending calls are cancelled).

With ``validation`` given, every answer also passes the per-record data checks
(:func:`~embodied_r.validation.answer_checks.answer_problem`: refusal, blank, description length). An answer
that fails them is cached marked ``invalid`` with its attempt number and still used this run, so the blocking
Great Expectations checks show and block it; the next run asks it again instead of serving it from the cache,
up to ``perception.max_attempts`` answers. After the last attempt its questions go to ``failures`` (reported,
not asked again). Those answers are listed in ``DescribeOutcome.invalid_answers``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from embodied_r.data.records import QuestionRecord
from embodied_r.keyframes import read_manifest
from embodied_r.perception.backends import DescribeRequest, PerceptionError, VisionLanguageModel, make_backend
from embodied_r.perception.cache import DescriptionCache, cache_key
from embodied_r.perception.config import PerceptionConfig
from embodied_r.perception.parse import parse_answer
from embodied_r.perception.prompts import PROMPT_VERSION, frame_prompt
from embodied_r.perception.records import DescribedSample, FrameDescription
from embodied_r.redaction import redact_secrets
from embodied_r.validation.answer_checks import answer_problem
from embodied_r.validation.config import ValidationConfig

logger = logging.getLogger(__name__)

MAX_ERROR_CHARS = 500


@dataclass
class DescribeOutcome:
    """Described samples (input order), failed questions with reasons, and counters of the run.

    ``dropped``: questions left out before describing, because key-frame extraction failed for their video
    (``{"question_id", "video_id", "reason", "error"}``; filled by ``perception.stage.describe_dataset``).
    ``invalid_answers``: this run's answers that fail the per-record data checks (``video_id``, ``k``,
    ``frame_indices``, ``question_ids``, ``problem``, ``attempt``, ``max_attempts``, ``reasked_next_run``).
    """

    samples: list[DescribedSample]
    failures: list[dict[str, str]]
    stats: dict[str, int] = field(default_factory=dict)
    dropped: list[dict[str, str]] = field(default_factory=list)
    invalid_answers: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _Keyframes:
    indices: tuple[int, ...]
    paths: tuple[Path, ...]


def _load_keyframes(keyframes_root: Path, video_id: str) -> _Keyframes | str:
    """The video's key frames, or the reason they are unusable."""
    folder = keyframes_root / video_id
    manifest = read_manifest(folder)
    if manifest is None:
        return f"no key-frame manifest in {folder} (key-frame extraction failed or has not run for this video)"
    entries = manifest.get("keyframes") or []
    if not entries:
        return f"the key-frame manifest in {folder} lists no key frames"
    paths = tuple(folder / e["file"] for e in entries)
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        return f"key-frame images missing in {folder}: {', '.join(missing[:5])}"
    return _Keyframes(tuple(int(e["index"]) for e in entries), paths)


def _error_text(exc: BaseException) -> str:
    """The error as written to ``failures`` and the log: credentials redacted first (a server may echo the key)."""
    return redact_secrets(f"{type(exc).__name__}: {exc}")[:MAX_ERROR_CHARS]


def _gave_up_text(request: DescribeRequest, problem: str, attempts: int, max_attempts: int) -> str:
    """The failure of a request whose every answer failed the per-record data checks."""
    return (
        f"k={request.k} frames {list(request.frame_indices)}: the VLM's answer failed the data checks in all "
        f"{attempts} attempts (perception.max_attempts={max_attempts}), last: {problem}; not asked again — a "
        "stronger VLM or prompt, looser validation.* bounds or a larger perception.max_attempts brings it back"
    )


def _frame_description(k: int, index: int, text: str) -> FrameDescription:
    if k == 0:
        return FrameDescription(index=index, action=None, observation=text.strip(), raw=text)
    parsed = parse_answer(text)
    return FrameDescription(index=index, action=parsed.action, observation=parsed.observation, raw=text)


def _answer_problem(entry: dict, request: DescribeRequest, validation: ValidationConfig | None) -> str | None:
    """Why the per-record data checks refuse this answer (``None``: it passes, or there are no checks)."""
    if validation is None:
        return None
    index = request.frame_indices[-1]
    return answer_problem(_frame_description(request.k, index, entry["text"]), validation)


def _call(
    backend: VisionLanguageModel,
    cache: DescriptionCache,
    key: str,
    request: DescribeRequest,
    cfg,
    attempt: int = 1,
    validation: ValidationConfig | None = None,
) -> dict:
    answer = backend.describe(request)
    if not isinstance(answer.text, str) or not answer.text.strip():
        raise PerceptionError(f"{request.video_id} k={request.k}: empty answer")
    entry = {
        "text": answer.text,
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "video_id": request.video_id,
        "k": request.k,
        "frame_indices": list(request.frame_indices),
        "backend": cfg.backend,
        "model": cfg.model,
        "prompt_version": PROMPT_VERSION,
        "prompt": request.prompt,
        "attempts": attempt,
    }
    problem = _answer_problem(entry, request, validation)
    if problem is not None:  # cached all the same: the attempt count must survive to bound the re-asking
        entry["invalid"] = problem
    cache.put(key, entry)  # at once: a later interrupt loses nothing already described
    return entry


def describe_samples(
    records: Iterable[QuestionRecord],
    *,
    keyframes_root: str | Path,
    videos: Mapping[str, Mapping[str, Any]],
    ground_truth_root: str | Path | None,
    cfg: PerceptionConfig,
    backend: VisionLanguageModel | None = None,
    cache: DescriptionCache | None = None,
    progress: bool = True,
    validation: ValidationConfig | None = None,
) -> DescribeOutcome:
    """Describe the key frames of every record's video, question-conditioned, through the cache.

    ``videos`` maps ``video_id`` → ``{"sha256": …, "path": …}`` (the sha256 goes into the cache key);
    ``ground_truth_root`` holds ``<video_id>.json`` (needed by the oracle backend only). ``backend`` defaults
    to :func:`make_backend(cfg) <embodied_r.perception.backends.make_backend>`, made only when something is
    not cached; ``cache`` to a :class:`DescriptionCache` at ``cfg.cache_dir``. ``validation`` turns on the
    per-record data checks of each answer and the re-asking of failing ones (see the module docstring).

    Returns the samples of the questions whose every key frame was described, the failed questions
    (``{"question_id", "video_id", "error"}``) and ``stats``: ``calls`` (backend calls made), ``cache_hits``,
    ``items`` (distinct requests needed), ``failed_items``, ``prompt_tokens``, ``completion_tokens``,
    ``failures`` (failed questions), ``samples``, ``reasked`` (cached answers that failed the per-record checks,
    asked again), ``invalid_answers`` (answers failing those checks after this run).
    """
    records = list(records)
    keyframes_root = Path(keyframes_root)
    gt_root = Path(ground_truth_root) if ground_truth_root is not None else None
    cache = cache if cache is not None else DescriptionCache(cfg.cache_dir)
    settings = cfg.generation_settings()
    failures: list[dict[str, str]] = []

    keyframes: dict[str, _Keyframes | str] = {}
    for record in records:
        if record.video_id not in keyframes:
            if record.video_id not in videos:
                keyframes[record.video_id] = f"video {record.video_id} is not among the known videos"
            else:
                keyframes[record.video_id] = _load_keyframes(keyframes_root, record.video_id)

    video_questions: dict[str, list[str]] = defaultdict(list)
    for record in records:
        if isinstance(keyframes[record.video_id], _Keyframes):
            video_questions[record.video_id].append(record.question)

    requests: dict[str, DescribeRequest] = {}
    plan: list[tuple[QuestionRecord, list[str]]] = []
    for record in records:
        kf = keyframes[record.video_id]
        if isinstance(kf, str):
            failures.append({"question_id": record.question_id, "video_id": record.video_id, "error": kf})
            continue
        if cfg.mode == "per_question":
            questions: tuple[str, ...] = (record.question,)
        else:
            questions = tuple(sorted(set(video_questions[record.video_id])))
        keys = []
        for k in range(len(kf.indices)):
            pair = kf.indices[k : k + 1] if k == 0 else kf.indices[k - 1 : k + 1]
            images = kf.paths[k : k + 1] if k == 0 else kf.paths[k - 1 : k + 1]
            key = cache_key(
                video_sha256=str(videos[record.video_id]["sha256"]),
                keyframe_indices=kf.indices,
                frame_pair=pair,
                prompt_version=PROMPT_VERSION,
                backend=cfg.backend,
                model=cfg.model,
                settings=settings,
                questions=questions,
            )
            if key not in requests:
                requests[key] = DescribeRequest(
                    prompt=frame_prompt(k, questions),
                    images=images,
                    video_id=record.video_id,
                    k=k,
                    frame_indices=pair,
                    questions=questions,
                    ground_truth=None if gt_root is None else gt_root / f"{record.video_id}.json",
                    keyframe_indices=kf.indices,
                )
            keys.append(key)
        plan.append((record, keys))

    answers: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    to_call: list[str] = []
    asked_before: dict[str, int] = {}  # key -> answers already given, for cached answers that fail the checks
    invalid: dict[str, tuple[str, int]] = {}  # key -> (problem, attempt) of answers failing the per-record checks
    for key in requests:
        entry = cache.get(key)
        if entry is None or not isinstance(entry.get("text"), str) or not entry["text"].strip():
            to_call.append(key)
            continue
        # Checked again on every read, not trusted from the entry: the validation bounds may have changed.
        problem = _answer_problem(entry, requests[key], validation)
        if problem is None:
            answers[key] = entry
            continue
        attempts = int(entry.get("attempts") or 1)
        if attempts < cfg.max_attempts:
            asked_before[key] = attempts  # not served: asked again (the answer failed the checks)
            to_call.append(key)
        else:
            invalid[key] = (problem, attempts)
            errors[key] = _gave_up_text(requests[key], problem, attempts, cfg.max_attempts)
    cache_hits = len(answers)
    logger.info(
        "perception: %d questions, %d distinct requests (%s, %s/%s), %d cached, %d to call (%d of them re-asked: "
        "their cached answers fail the data checks), %d failing after perception.max_attempts=%d",
        len(records), len(requests), cfg.mode, cfg.backend, cfg.model, cache_hits, len(to_call), len(asked_before),
        len(invalid), cfg.max_attempts,
    )  # fmt: skip

    calls = prompt_tokens = completion_tokens = 0
    own_backend = False
    if to_call:
        if backend is None:
            backend = make_backend(cfg)
            own_backend = True
        pool = ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix="perception")
        futures: dict[Future, str] = {}
        bar = tqdm(total=len(to_call), desc="perception", unit="call", disable=not progress)
        try:
            for key in to_call:
                attempt = asked_before.get(key, 0) + 1
                futures[pool.submit(_call, backend, cache, key, requests[key], cfg, attempt, validation)] = key
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    key = futures[future]
                    calls += 1
                    bar.update(1)
                    try:
                        entry = future.result()
                    except Exception as exc:  # per-item failure: recorded, not cached, retried next run
                        req = requests[key]
                        errors[key] = f"k={req.k} frames {list(req.frame_indices)}: {_error_text(exc)}"
                        logger.warning("perception failed for %s %s", req.video_id, errors[key])
                        continue
                    if "invalid" in entry:
                        req, attempt = requests[key], int(entry["attempts"])
                        invalid[key] = (entry["invalid"], attempt)
                        logger.warning(
                            "perception: the answer for %s k=%d fails the data checks (%s), attempt %d of %d",
                            req.video_id, req.k, entry["invalid"], attempt, cfg.max_attempts,
                        )  # fmt: skip
                        if attempt >= cfg.max_attempts:
                            errors[key] = _gave_up_text(req, entry["invalid"], attempt, cfg.max_attempts)
                            continue
                    answers[key] = entry
                    prompt_tokens += int(entry.get("prompt_tokens") or 0)
                    completion_tokens += int(entry.get("completion_tokens") or 0)
        finally:
            bar.close()
            pool.shutdown(wait=True, cancel_futures=True)
            if own_backend:
                backend.close()

    samples: list[DescribedSample] = []
    for record, keys in plan:
        failed = [errors[key] for key in keys if key not in answers]
        if failed:
            error = f"{len(failed)} of {len(keys)} key frames not described; first: {failed[0]}"
            failures.append({"question_id": record.question_id, "video_id": record.video_id, "error": error})
            continue
        kf = keyframes[record.video_id]
        assert isinstance(kf, _Keyframes)
        frames = [_frame_description(k, kf.indices[k], answers[key]["text"]) for k, key in enumerate(keys)]
        samples.append(
            DescribedSample(
                question_id=record.question_id,
                video_id=record.video_id,
                scene_name=record.scene_name,
                category=record.category,
                split=record.split,
                question=record.question,
                answer=record.answer,
                choices=sorted(record.choices),
                data_source=record.data_source,
                keyframe_indices=list(kf.indices),
                frames=frames,
                mode=cfg.mode,
                backend=cfg.backend,
                model=cfg.model,
                prompt_version=PROMPT_VERSION,
            )
        )
    stats = {
        "calls": calls,
        "cache_hits": cache_hits,
        "items": len(requests),
        "failed_items": len(errors),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "failures": len(failures),
        "samples": len(samples),
        "reasked": len(asked_before),
        "invalid_answers": len(invalid),
    }
    logger.info("perception done: %s", stats)
    question_ids: dict[str, list[str]] = defaultdict(list)
    for record, keys in plan:
        for key in keys:
            question_ids[key].append(record.question_id)
    invalid_answers = [
        {
            "video_id": requests[key].video_id,
            "k": requests[key].k,
            "frame_indices": list(requests[key].frame_indices),
            "question_ids": sorted(question_ids[key]),
            "problem": problem,
            "attempt": attempt,
            "max_attempts": cfg.max_attempts,
            "reasked_next_run": attempt < cfg.max_attempts,
        }
        for key, (problem, attempt) in invalid.items()
    ]
    invalid_answers.sort(key=lambda e: (e["video_id"], e["k"], e["question_ids"]))
    return DescribeOutcome(samples=samples, failures=failures, stats=stats, invalid_answers=invalid_answers)
