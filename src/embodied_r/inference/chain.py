"""One question about one video, through the whole chain: key frames → perception → the LM prompt → the answer.

Every step is the pipeline's own function, with the settings the pipeline used, so a test question of the
lineage gets here the answer ``evaluation_results`` gave it:

* key frames: :func:`embodied_r.keyframes.extract_many` (``keyframes.*``), after
  :func:`~embodied_r.keyframes.keyframe_refusal` (an unreadable or too short video is one message);
* perception: :func:`embodied_r.perception.describe.describe_samples` with ``perception.*`` through the
  content-addressed cache. The oracle backend describes only the embedded world's own videos: it reads their
  ground truth (``ground_truth/<video_id>.json`` next to the ``videos/`` folder, as ingest writes it); a real
  video needs the ``openai`` or ``transformers`` backend;
* the prompt: :func:`embodied_r.perception.lm_prompt.build_messages` (``training_set.system_prompt``), as the
  training set builds its rows;
* the answer: :func:`embodied_r.evaluation.generate.generate_completions` (greedy, ``evaluation.max_new_tokens``
  and ``evaluation.precision``), read as :func:`~embodied_r.evaluation.metrics.score_sample` reads it
  (``rewards.accuracy_mode``, the think prefill the training recorded next to the weights).

:class:`InferenceSettings` is what of ``params.yaml`` the chain needs; it travels with a registered model
(``settings.json``), so a served model answers as the project that trained it (the VLM's API key never does: only
the name of its environment variable).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from embodied_r.config import KeyframesConfig, Params, PerceptionConfig
from embodied_r.errors import UserError

log = logging.getLogger(__name__)

#: Stand-in ids of the one question a chain answers (they name nothing in a dataset).
QUESTION_ID = "ask"
#: ``--option "B. to the left"`` is the option ``to the left``: a leading letter label is dropped.
_LETTER_LABEL = re.compile(r"^\s*\(?[A-Z][.):]\s+")


class InferenceError(UserError, ValueError):
    """A question the chain cannot answer as asked (bad video, backend, model): the message says why and the fix."""


class InferenceSettings(BaseModel):
    """The settings of ``params.yaml`` that change an answer of the chain (and nothing machine-specific)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keyframes: KeyframesConfig
    perception: PerceptionConfig
    system_prompt: bool
    max_new_tokens: int
    precision: Literal["auto", "bf16", "fp32"]
    answer_mode: str
    max_prompt_tokens: int

    @classmethod
    def from_params(cls, params: Params) -> InferenceSettings:
        """The chain's settings as evaluation uses them."""
        return cls(
            keyframes=params.keyframes,
            perception=params.perception,
            system_prompt=params.training_set.system_prompt,
            max_new_tokens=params.evaluation.max_new_tokens,
            precision=params.evaluation.precision,
            answer_mode=params.rewards.accuracy_mode,
            max_prompt_tokens=params.training_set.max_prompt_tokens,
        )


@dataclass(frozen=True)
class Answer:
    """The chain's answer to one question, with what it saw and how long each stage took.

    ``letter``: the option letter read from the completion (``None``: none could be read, or a numeric question);
    ``text``: that option's text (a numeric question: the number read). ``think``: the ``<think>`` text;
    ``completion``: the whole assistant turn (with the think prefill the model was trained with).
    ``keyframe_indices`` / ``descriptions``: the key frames' frame numbers and the perception's text of each.
    ``model``: which model answered (``name vN`` for a registered version). ``seconds``: per stage.
    ``prompt``: the chat messages the LM read (as a training row's ``prompt``), ``prompt_tokens`` their length;
    ``truncated``: the completion hit ``evaluation.max_new_tokens``.
    """

    letter: str | None
    text: str | None
    think: str
    completion: str
    keyframe_indices: list[int]
    descriptions: list[str]
    model: str
    seconds: dict[str, float]
    prompt: list[dict[str, str]] = field(default_factory=list)
    prompt_tokens: int = 0
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field."""
        return asdict(self)


def question_choices(question: str, options: Sequence[str]) -> tuple[str, dict[str, str]]:
    """The full question text (stem, then ``A. …`` lines, as ingest composes it) and its choices by letter.

    ``options`` in order become A, B, …; without options the question's own lettered lines are its choices
    (none: a numeric question).

    >>> question_choices("Where is the door?", ["left", "B. right"])
    ('Where is the door?\\nA. left\\nB. right', {'A': 'left', 'B': 'right'})
    """
    from embodied_r.data.records import compose_question, parse_choices
    from embodied_r.vocabulary import LETTERS

    if not question.strip():
        raise InferenceError("the question is empty: give the question's text (--question)")
    if not options:
        return question.strip(), parse_choices(question)
    if len(options) > len(LETTERS):
        raise InferenceError(f"{len(options)} options: at most {len(LETTERS)} are supported")
    texts = [_LETTER_LABEL.sub("", o).strip() for o in options]
    if not all(texts):
        raise InferenceError(f"an option is empty: {list(options)}")
    choices = {LETTERS[i]: text for i, text in enumerate(texts)}
    return compose_question(question, choices), choices


def find_ground_truth(video: Path, video_id: str, roots: Sequence[Path] = ()) -> Path | None:
    """The embedded world's ground truth of a video: ``ground_truth/<video_id>.json`` beside its ``videos/``
    folder (the ingest layout), else in one of ``roots``."""
    for folder in (video.resolve().parent.parent / "ground_truth", *roots):
        path = Path(folder) / f"{video_id}.json"
        if path.is_file():
            return path
    return None


class Chain:
    """The chain with one loaded LM: :meth:`answer` a question about a video, as many times as asked.

    ``model_dir``: the trained LM's Hugging Face folder; ``label``: how answers name it; ``work_dir``: where key
    frames are written (one folder per video content); ``cache_dir``: the perception cache;
    ``ground_truth_roots``: further folders of the embedded world's ground truth; ``video_ids``: sha256 → the
    dataset's id of a known video (the oracle's noise is seeded by it, as in the pipeline).
    """

    def __init__(
        self,
        settings: InferenceSettings,
        model_dir: Path,
        *,
        label: str,
        work_dir: Path,
        cache_dir: Path,
        ground_truth_roots: Sequence[Path] = (),
        video_ids: Mapping[str, str] | None = None,
    ) -> None:
        from embodied_r.evaluation.generate import read_think_prefill
        from embodied_r.models.generation import load_for_generation

        self.settings = settings
        self.model_dir = Path(model_dir)
        self.label = label
        self.work_dir = Path(work_dir)
        self.cache_dir = Path(cache_dir)
        self.ground_truth_roots = tuple(Path(r) for r in ground_truth_roots)
        self.video_ids = dict(video_ids or {})
        start = time.perf_counter()
        self.loaded = load_for_generation(self.model_dir, precision=settings.precision)
        self.load_seconds = time.perf_counter() - start
        self.think_prefill = read_think_prefill(self.model_dir)

    def answer(self, video: Path, question: str, options: Sequence[str] = ()) -> Answer:
        """Answer ``question`` (with ``options``) about ``video``; an :class:`InferenceError` says what is wrong."""
        from embodied_r.hashing import sha256_file
        from embodied_r.keyframes import extract_many, keyframe_refusal

        video = Path(video)
        seconds: dict[str, float] = {}
        text, choices = question_choices(question, options)
        start = time.perf_counter()
        problem = keyframe_refusal(video, self.settings.keyframes)
        if problem is not None:
            raise InferenceError(f"{video}: cannot take key frames of this video ({problem.reason}): {problem}")
        sha = sha256_file(video)
        video_id = self.video_ids.get(sha, video.stem)
        root = self.work_dir / sha[:16]  # one folder per content: a changed file at the same path is new work
        _, failures = extract_many({video_id: video}, self.settings.keyframes, root, progress=False)
        if failures:
            raise InferenceError(f"{video}: key-frame extraction failed: {failures[0]['error']}")
        seconds["keyframes"] = time.perf_counter() - start

        start = time.perf_counter()
        sample = self._describe(video, video_id, sha, root, text, choices)
        seconds["perception"] = time.perf_counter() - start

        start = time.perf_counter()
        row = self._row(sample)
        seconds["prompt"] = time.perf_counter() - start
        start = time.perf_counter()
        generation = self._generate(row)
        seconds["generation"] = time.perf_counter() - start
        return self._read(generation, row, sample, choices, seconds)

    def _describe(self, video: Path, video_id: str, sha: str, root: Path, text: str, choices: dict[str, str]):
        from embodied_r.data.records import QuestionRecord
        from embodied_r.perception.cache import DescriptionCache
        from embodied_r.perception.describe import describe_samples

        cfg = self.settings.perception
        ground_truth = find_ground_truth(video, video_id, self.ground_truth_roots)
        if cfg.backend == "oracle" and ground_truth is None:
            raise InferenceError(
                f"{video}: perception.backend is oracle, which describes only the embedded world's own videos from "
                f"their ground truth (no ground_truth/{video_id}.json beside the video's folder). For any other "
                "video set perception.backend: openai (an OpenAI-compatible VLM server) or transformers (a local "
                "VLM) in params.yaml"
            )
        record = QuestionRecord(
            question_id=QUESTION_ID,
            video_id=video_id,
            category=QUESTION_ID,
            question=text,
            answer=min(choices) if choices else "0",  # the record needs one; nothing reads it here
            scene_name=QUESTION_ID,
            data_source=QUESTION_ID,
            kind="multiple_choice" if choices else "numeric",
            choices=choices,
            split="test",
        )
        outcome = describe_samples(
            [record],
            keyframes_root=root,
            videos={video_id: {"sha256": sha, "path": str(video)}},
            ground_truth_root=None if ground_truth is None else ground_truth.parent,
            cfg=cfg,
            cache=DescriptionCache(self.cache_dir),
            progress=False,
        )
        if outcome.failures:
            error = outcome.failures[0]["error"]
            where = f" (the VLM server at {cfg.base_url}: is it running?)" if cfg.backend == "openai" else ""
            raise InferenceError(f"{video}: perception with the {cfg.backend} backend failed{where}: {error}")
        return outcome.samples[0]

    def _row(self, sample):
        from embodied_r.perception.lm_prompt import build_messages
        from embodied_r.perception.prompts import question_for_prompt
        from embodied_r.training.dataset import count_prompt_tokens
        from embodied_r.training.rows import TrainingRow

        messages = build_messages(sample, system_prompt=self.settings.system_prompt)
        tokens = count_prompt_tokens(self.loaded[1], messages)
        if tokens > self.settings.max_prompt_tokens:
            log.warning("the prompt has %d tokens, more than training allowed (training_set.max_prompt_tokens=%d)",
                        tokens, self.settings.max_prompt_tokens)  # fmt: skip
        return TrainingRow(
            question_id=QUESTION_ID, prompt=messages, solution=sample.answer,
            question=question_for_prompt(sample.question), choices=list(sample.choices), category=QUESTION_ID,
            data_source=QUESTION_ID, scene_name=QUESTION_ID, split="test", prompt_tokens=tokens,
        )  # fmt: skip

    def _generate(self, row):
        from embodied_r.evaluation.generate import generate_completions

        return generate_completions(
            self.model_dir, [row], max_new_tokens=self.settings.max_new_tokens, batch_size=1,
            precision=self.settings.precision, progress=False, loaded=self.loaded,
        )[0]  # fmt: skip

    def _read(self, generation, row, sample, choices: dict[str, str], seconds: dict[str, float]) -> Answer:
        from embodied_r.answers import extract_answer, extract_number, extract_think

        completion = (self.think_prefill or "") + generation.text
        if choices:
            letter = extract_answer(completion, row.choices, self.settings.answer_mode, question=row.question)
            text = choices.get(letter) if letter else None
        else:
            number = extract_number(completion)
            letter, text = None, None if number is None else f"{number:g}"
        return Answer(
            letter=letter,
            text=text,
            think=extract_think(completion) or "",
            completion=completion,
            keyframe_indices=list(sample.keyframe_indices),
            descriptions=[frame.raw for frame in sample.frames],
            model=self.label,
            seconds={k: round(v, 3) for k, v in seconds.items()},
            prompt=row.prompt,
            prompt_tokens=row.prompt_tokens,
            truncated=generation.truncated,
        )


__all__ = ["Answer", "Chain", "InferenceError", "InferenceSettings", "find_ground_truth", "question_choices"]
