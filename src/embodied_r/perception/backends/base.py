"""The one interface every VLM backend implements, and what goes in and out of it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path


class PerceptionError(RuntimeError):
    """A backend could not produce an answer for one item (recorded as a failure, never cached)."""


@dataclass(frozen=True)
class DescribeRequest:
    """One VLM call: the prompt, its images, and the context the oracle needs.

    ``k`` is the key-frame position (0 = first key frame, described alone; k > 0 = pair k−1, k).
    ``images`` are one (k = 0) or two (k−1, k) key-frame JPEG paths; ``frame_indices`` their frame numbers
    in the video. ``questions`` are the full question texts the prompt names (one, or all of a video's).
    """

    prompt: str
    images: tuple[Path, ...]
    video_id: str
    k: int
    frame_indices: tuple[int, ...]
    questions: tuple[str, ...]
    ground_truth: Path | None = None
    keyframe_indices: tuple[int, ...] = field(default=())


@dataclass(frozen=True)
class VLMAnswer:
    """The text a backend returned, with token usage (0 when the backend has none)."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class VisionLanguageModel(ABC):
    """A VLM that describes key frames. Implementations must be safe to call from several threads."""

    #: Backend name, as in ``PerceptionConfig.backend``.
    name: str = "abstract"

    @abstractmethod
    def describe(self, request: DescribeRequest) -> VLMAnswer:
        """Answer one request; raise on failure (the driver records it and retries on the next run)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients or models (optional)."""
