"""A tiny project materialized up to its key frames, on a real ephemeral Dagster instance."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
import yaml

from embodied_r.models.tiny import build_tiny_lm
from orchestration.definitions import defs
from orchestration.partitions import all_videos_run_tags
from orchestration.resources import MlflowResource, ProjectResource

#: Every asset and check of the code location, for selections.
ALL_ASSETS = [*defs.assets, *(defs.asset_checks or [])]


class TinyPipeline:
    """The tiny project with its instance and resources; ``materialize`` runs a selection in-process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.instance = dg.DagsterInstance.ephemeral()
        project = ProjectResource(root=str(root))
        self.project = project
        self.resources = {"project": project, "mlflow": MlflowResource(project=project)}

    def materialize(self, selection: list[str], **kwargs) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            ALL_ASSETS, selection=selection, instance=self.instance, resources=self.resources, **kwargs
        )

    def materialize_keyframes(self) -> None:
        assert self.materialize(["raw_videos"]).success
        assert self.materialize(["keyframes"], tags=all_videos_run_tags(self.instance, self.project)).success


@pytest.fixture
def tiny_pipeline(tiny_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., TinyPipeline]:
    """``tiny_pipeline(**param_overrides)``: the tiny project, with a tiny local LM, up to its key frames."""

    def make(**sections: dict) -> TinyPipeline:
        params = yaml.safe_load((tiny_project / "params.yaml").read_text())
        params["lm"]["base"] = str(build_tiny_lm(tmp_path_factory.mktemp("lm")))
        for section, values in sections.items():
            params[section].update(values)
        (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
        pipeline = TinyPipeline(tiny_project)
        pipeline.materialize_keyframes()
        return pipeline

    return make
