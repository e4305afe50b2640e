"""A tiny lineage, built once for these tests through Dagster: ingest to ``evaluation_results``, champion v1.

The ``tiny`` profile (CI) with a tiny local LM; the SFT baseline, the base model's pass, the noise study and the
consistency judge are switched off (they feed nothing the chain reads) to keep it to a couple of minutes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT

LINEAGE = ["vlm_descriptions", "base_lm", "training_set", "warm_lm", "sft_lm", "grpo_lm", "evaluation_results"]


@dataclass(frozen=True)
class TestQuestion:
    """A held-out test question of the lineage, what ``evaluation_results`` answered and what perception said."""

    question_id: str
    video: Path
    stem: str
    options: list[str]
    row: dict  # the training set's test row (its prompt)
    sample: dict  # evaluation_results' per-question output of the GRPO model
    descriptions: list[str]


@dataclass(frozen=True)
class Lineage:
    root: Path

    def test_question(self, index: int = 0) -> TestQuestion:
        """The ``index``-th test question (by question id) with its evaluation sample."""
        from embodied_r.data.records import read_records

        data = self.root / "data"
        rows = [json.loads(line) for line in (data / "training_set" / "test.jsonl").read_text().splitlines()]
        row = rows[index]
        record = next(r for r in read_records(data / "raw" / "records.jsonl") if r.question_id == row["question_id"])
        samples = (data / "evaluation" / "samples" / "grpo.jsonl").read_text().splitlines()
        sample = next(s for s in map(json.loads, samples) if s["question_id"] == row["question_id"])
        described = (data / "descriptions" / "samples.jsonl").read_text().splitlines()
        frames = next(d for d in map(json.loads, described) if d["question_id"] == row["question_id"])["frames"]
        videos = json.loads((data / "raw" / "videos.json").read_text())
        choice_lines = {f"{letter}. {text}" for letter, text in record.choices.items()}
        stem = "\n".join(line for line in record.question.splitlines() if line not in choice_lines)
        return TestQuestion(
            question_id=record.question_id,
            video=(data / "raw" / videos[record.video_id]["path"]).resolve(),
            stem=stem,
            options=[record.choices[letter] for letter in sorted(record.choices)],
            row=row,
            sample=sample,
            descriptions=[f["raw"] for f in frames],
        )


@pytest.fixture(scope="session")
def tiny_lineage(tmp_path_factory: pytest.TempPathFactory) -> Lineage:
    """The tiny project after ``evaluation_results`` (v1 registered and champion)."""
    import dagster as dg

    from embodied_r.models.tiny import build_tiny_lm
    from embodied_r.profiles import deep_merge, profile_changes
    from orchestration.definitions import defs
    from orchestration.partitions import all_videos_run_tags
    from orchestration.resources import MlflowResource, ProjectResource

    root = tmp_path_factory.mktemp("lineage")
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params = deep_merge(params, profile_changes(PROJECT_ROOT, "tiny"))
    params["profile"] = "test"
    params["lm"]["base"] = str(build_tiny_lm(tmp_path_factory.mktemp("lm")))
    params["sft"]["enabled"] = False
    params["evaluation"].update(noise_study={}, judge_consistency=False, base_model=False)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    project = ProjectResource(root=str(root))
    resources = {"project": project, "mlflow": MlflowResource(project=project)}
    instance = dg.DagsterInstance.ephemeral()
    everything = [*defs.assets, *(defs.asset_checks or [])]

    def run(selection: list[str], **kwargs) -> None:
        result = dg.materialize(everything, selection=selection, instance=instance, resources=resources, **kwargs)
        assert result.success, selection

    run(["raw_videos"])
    run(["keyframes"], tags=all_videos_run_tags(instance, project))
    run(LINEAGE)
    promotion = json.loads((root / "data" / "evaluation" / "results.json").read_text())["extra"]["promotion"]
    assert promotion["promoted"], "v1 is the champion"
    return Lineage(root)
