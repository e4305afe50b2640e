"""Resources: the project (params.yaml + layout) and MLflow tracking."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from embodied_r.config import Params, load_params
from embodied_r.layout import Layout
from embodied_r.profiles import compose_profiles, profile_names


class ProjectResource(dg.ConfigurableResource):
    """The project checkout: where the params file is and where outputs go.

    All are explicit config: ``embodied-r materialize`` passes its ``--root``, ``--params`` and ``--profile``; the
    code location ``dagster dev`` loads declares them as ``dg.EnvVar`` (see :mod:`orchestration.definitions`).
    """

    root: str = Field(description="The project root (holds the params file; outputs go under it).")
    params_file: str = Field("params.yaml", description="The params file, relative to the root (or absolute).")
    profiles: str = Field(
        "",
        description="Profiles (profiles/<name>.yaml) composed in order on top of the params file, comma-separated "
        "(`--profile tiny,cpu-long`; a later one wins). The runs read the composition; no file is written.",
    )

    @property
    def root_path(self) -> Path:
        return Path(self.root).resolve()

    def load_params(self) -> Params:
        """Read and validate the params file, with the profiles on top (fresh on every call: the files are the
        truth)."""
        path = Path(self.params_file)
        path = path if path.is_absolute() else self.root_path / path
        if not profile_names(self.profiles):
            return load_params(path)
        return compose_profiles(self.root_path, profile_names(self.profiles), path).params

    def layout(self, params: Params | None = None) -> Layout:
        params = params or self.load_params()
        return Layout(root=self.root_path, data_dir=params.data_dir)


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking and registry, configured from the ``tracking`` section of params."""

    project: ProjectResource
    ui_url: str = "http://127.0.0.1:5000"

    def configure(self) -> str:
        """Point MLflow at the project's store; returns the experiment id."""
        from embodied_r.tracking import configure_tracking

        return configure_tracking(self.project.load_params().tracking, self.project.root_path)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        from embodied_r.tracking import run_url

        return run_url(experiment_id, run_id, self.ui_url)
