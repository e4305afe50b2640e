"""Where each stage's outputs live. One place, shared by the Dagster assets and ``dvc.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RECORDS_FILE = "records.jsonl"  # raw_videos' question records, in Layout.raw


@dataclass(frozen=True)
class Layout:
    """Paths of a project checkout: ``root`` is the folder holding ``params.yaml``."""

    root: Path
    data_dir: str = "data"

    @property
    def data(self) -> Path:
        return self.root / self.data_dir

    @property
    def raw(self) -> Path:
        """``raw_videos``: records, videos, ground truth, split."""
        return self.data / "raw"

    @property
    def records(self) -> Path:
        """``raw_videos``' question records, one per line."""
        return self.raw / RECORDS_FILE

    @property
    def keyframes(self) -> Path:
        """``keyframes``: one folder per video."""
        return self.data / "keyframes"

    @property
    def descriptions(self) -> Path:
        """``vlm_descriptions``: described samples, failures, data-check outcomes."""
        return self.data / "descriptions"

    @property
    def models(self) -> Path:
        """The model stages' pointers (``<stage>.json``) and model folders (``<stage>/``), all DVC outputs."""
        return self.data / "models"

    @property
    def training_set(self) -> Path:
        """``training_set``: train/val/test rows, exclusions, summary."""
        return self.data / "training_set"

    @property
    def checkpoints(self) -> Path:
        """GRPO output folders (checkpoints for resume, final model), outside ``data/``: DVC deletes stage
        outputs before a rerun, and an interrupted training must resume from its checkpoints."""
        return self.root / ".cache" / "grpo"

    @property
    def kept_generations(self) -> Path:
        """Test-pass completions kept as they are generated (:mod:`embodied_r.evaluation.kept`), outside
        ``data/`` for the same reason: an interrupted ``evaluation_results`` resumes in its unfinished pass."""
        return self.root / ".cache" / "evaluation"

    @property
    def evaluation(self) -> Path:
        """``evaluation_results``: metrics, per-sample outputs, plots, results with provenance."""
        return self.data / "evaluation"

    @property
    def predictions(self) -> Path:
        """``predictions``: one JSONL of answers per inbox video."""
        return self.data / "predictions"

    @property
    def reports(self) -> Path:
        """Failure and exclusion reports that are not stage outputs of their own."""
        return self.data / "reports"
