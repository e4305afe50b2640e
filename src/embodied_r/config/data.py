"""The data sections: the embedded world (``synthetic``), the benchmark sources (``data``) and the ``split``."""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from embodied_r.config.section import _check_category_list, _Section
from embodied_r.vocabulary import (
    SOURCE_CATEGORIES,
    SOURCE_NAMES,
    SYNTHETIC_CATEGORIES,
    TASK_CATEGORIES,
    source_categories,
)


class SyntheticConfig(_Section):
    """The embedded synthetic egocentric world (the default dataset)."""

    seed: int = Field(0, ge=0, description="Seed for scenes, trajectories and questions.")
    scenes: int = Field(20, ge=1, le=10_000, description="Scenes (the demo's 20: ~95 test questions of 5 scenes).")
    videos_per_scene: int = Field(4, ge=1, le=1000)
    questions_per_video: int = Field(
        8, ge=1, le=200, description="Target questions per video, spread over the categories."
    )
    width: int = Field(256, ge=64, le=1920)
    height: int = Field(192, ge=48, le=1080)
    fps: float = Field(10.0, gt=0, le=60)
    steps_per_video: int = Field(12, ge=4, le=200, description="Camera actions per trajectory.")
    frames_per_step: int = Field(8, ge=1, le=120, description="Rendered frames per action.")
    objects_per_scene: tuple[int, int] = Field((6, 10), description="Inclusive range of objects per scene.")
    categories: tuple[str, ...] = Field(
        TASK_CATEGORIES,
        description="Task categories to generate. In params.yaml, omitted or null = data.categories (those of the "
        "embedded world), so the list is written once.",
    )

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_category_list(value, SYNTHETIC_CATEGORIES, SOURCE_NAMES["embedded"])

    @model_validator(mode="after")
    def _check(self) -> SyntheticConfig:
        lo, hi = self.objects_per_scene
        if not 2 <= lo <= hi <= 40:
            raise ValueError(f"objects_per_scene must satisfy 2 <= low <= high <= 40, got {self.objects_per_scene}")
        return self


#: The real benchmarks' file formats (``data.source`` or a ``data.sources`` entry's ``kind``).
SourceKind = Literal["official", "urbanvideo", "vsibench"]


class SourceConfig(_Section):
    """One benchmark of a multi-source run (an entry of ``data.sources``)."""

    kind: SourceKind = Field(description="official (intermediate JSON) | urbanvideo (MCQ.parquet) | vsibench.")
    annotations: str = Field(min_length=1, description="The kind's annotations file (JSON or parquet).")
    videos_dir: str = Field(min_length=1, description="Its videos folder (VSI-Bench: per-dataset folders or zips).")


class DataConfig(_Section):
    """Which dataset to ingest and which of its questions to keep.

    Two forms, exactly one of them: one source (``source`` + ``annotations`` + ``videos_dir``; ``embedded`` needs
    no paths), or several benchmarks in one run (``source: null`` and ``sources``, a list of
    :class:`SourceConfig`: the paper trains and tests on UrbanVideo-Bench and VSI-Bench together).
    """

    source: Literal["embedded", "official", "urbanvideo", "vsibench"] | None = "embedded"
    #: For ``official``: the intermediate JSON; ``urbanvideo``: MCQ.parquet; ``vsibench``: the parquet.
    annotations: str | None = None
    #: Folder of videos (or, for VSI-Bench, of per-source folders or zips).
    videos_dir: str | None = None
    #: Several benchmarks in one ``raw_videos`` (with ``source: null``); split by scene within each source.
    sources: tuple[SourceConfig, ...] = ()
    #: Task categories kept (the paper keeps eight). Numeric VSI tasks only when listed here.
    categories: tuple[str, ...] = TASK_CATEGORIES
    max_questions: int | None = Field(None, ge=1, description="Cap on questions, for quick runs.")
    extract_dir: str = Field(
        ".cache/extracted",
        description="Where videos taken out of VSI-Bench zips are kept, relative to the project root. Outside "
        "data/ (DVC deletes stage outputs) and outside the dataset folder, which is never written to.",
    )

    @model_validator(mode="before")
    @classmethod
    def _sources_mean_no_single_source(cls, data: Any) -> Any:
        # With data.sources and no data.source, the default "embedded" is not a second form: source is null.
        if isinstance(data, dict) and data.get("sources") and "source" not in data:
            return {**data, "source": None}
        return data

    @field_validator("categories")
    @classmethod
    def _categories_of_the_source(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        # A misspelt name would keep 0 questions of it (all of them, if it is the only one): refuse it here.
        kinds = _source_kinds(info.data.get("source"), info.data.get("sources", ()))
        if not kinds or not {"source", "sources"} <= set(info.data):  # an invalid source: reported on its own key
            return _check_category_list(value, source_categories(SOURCE_CATEGORIES), "any source")
        return _check_category_list(value, source_categories(kinds), _sources_text(kinds))

    @model_validator(mode="after")
    def _paths_for_real_data(self) -> DataConfig:
        single = {k: v for k, v in (("annotations", self.annotations), ("videos_dir", self.videos_dir)) if v}
        if self.sources:
            if self.source is not None or single:
                keys = ", ".join(f"data.{k}" for k in ("source", *single) if k != "source" or self.source)
                raise ValueError(
                    f"data.sources (several sources) and {keys} (one source) are both set: use one form. For "
                    "several sources set data.source, data.annotations and data.videos_dir to null"
                )
            kinds = [s.kind for s in self.sources]
            twice = sorted(k for k, n in Counter(kinds).items() if n > 1)
            if twice:
                raise ValueError(f"data.sources lists kind {twice[0]!r} more than once: one entry per benchmark")
            return self
        if self.source is None:
            raise ValueError("data.source is null and data.sources is empty: name a source (embedded by default)")
        if self.source != "embedded" and (self.annotations is None or self.videos_dir is None):
            raise ValueError(f"data.source={self.source!r} needs data.annotations and data.videos_dir")
        return self

    def source_list(self) -> tuple[SourceConfig, ...]:
        """The real-data sources to ingest, in either form (empty for the embedded world)."""
        if self.sources:
            return self.sources
        if self.source in (None, "embedded"):
            return ()
        return (SourceConfig(kind=self.source, annotations=self.annotations, videos_dir=self.videos_dir),)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The source kinds of this run: ``("embedded",)``, ``("vsibench",)``, ``("urbanvideo", "vsibench")``."""
        return _source_kinds(self.source, self.sources)

    @property
    def label(self) -> str:
        """One name for the run's data: the source, or the kinds joined by ``+`` (``urbanvideo+vsibench``)."""
        return "+".join(self.kinds)


def _source_kinds(source: str | None, sources: tuple[SourceConfig, ...] | None) -> tuple[str, ...]:
    return tuple(s.kind for s in sources) if sources else (source,) if source else ()


def _sources_text(kinds: tuple[str, ...]) -> str:
    """``data.source 'urbanvideo' (UrbanVideo-Bench)`` or ``data.sources urbanvideo + vsibench``, for messages."""
    if len(kinds) == 1:
        return f"data.source {kinds[0]!r} ({SOURCE_NAMES[kinds[0]]})"
    return "data.sources " + " + ".join(kinds)


class SplitConfig(_Section):
    """Split by scene, seeded (the official code's split is unseeded — a flaw)."""

    seed: int = Field(0, ge=0)
    #: train/val/test shares; the official code uses 0.75/0.05/0.20.
    ratios: tuple[float, float, float] = (0.75, 0.05, 0.20)

    @model_validator(mode="after")
    def _ratios_sum_to_one(self) -> SplitConfig:
        if any(r < 0 for r in self.ratios) or abs(sum(self.ratios) - 1.0) > 1e-6:
            raise ValueError(f"split.ratios must be three non-negative shares summing to 1, got {list(self.ratios)}")
        return self
