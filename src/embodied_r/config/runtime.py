"""Where runs are tracked (``tracking``, MLflow) and how Dagster executes them (``orchestration``)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from embodied_r.config.section import _Section


class TrackingConfig(_Section):
    """MLflow tracking and registry."""

    tracking_uri: str = "sqlite:///mlruns/mlflow.db"
    artifact_root: str = "mlruns/artifacts"
    experiment: str = "embodied-r"
    registered_model: str = "embodied-r-lm"


#: ``orchestration.executor`` values other than the two built-in names: a Dagster ``ExecutorDefinition`` by import path.
_EXECUTOR_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class OrchestrationConfig(_Section):
    """How Dagster executes one materialization. Not in the paper (no orchestration there); no effect on results.

    ``in_process`` (the default) runs a run's steps one after another inside ``embodied-r materialize``.
    ``multiprocess`` runs each step in its own process, up to ``max_concurrent`` at once, so the independent steps
    of one command (``raw_videos`` and ``base_lm``, ``warm_lm`` and ``sft_lm``, the per-video key frames and the
    base LM) run in parallel on a many-core machine. A Dagster deployment names its own executor by import path,
    ``module:attribute`` (``dagster_k8s:k8s_job_executor``, ``dagster_celery:celery_executor``), configured by
    ``executor_config``; its run launcher stays in the instance's ``dagster.yaml``. No code changes either way.
    """

    executor: str = Field(
        "in_process",
        description="in_process | multiprocess | module:attribute of a Dagster ExecutorDefinition.",
    )
    max_concurrent: int = Field(0, ge=0, description="multiprocess: steps at once; 0 = one per CPU (Dagster's).")
    executor_config: dict[str, Any] = Field(
        default_factory=dict, description="module:attribute executors: their config (Dagster's execution config)."
    )

    @field_validator("executor")
    @classmethod
    def _known_executor(cls, value: str) -> str:
        if value in ("in_process", "multiprocess") or _EXECUTOR_PATH.match(value):
            return value
        raise ValueError(
            f"unknown executor {value!r}: use in_process, multiprocess or the import path of a Dagster executor, "
            "module:attribute (e.g. dagster_k8s:k8s_job_executor)"
        )

    @model_validator(mode="after")
    def _config_for_its_executor(self) -> OrchestrationConfig:
        if self.executor_config and not _EXECUTOR_PATH.match(self.executor):
            raise ValueError(
                f"executor_config configures a module:attribute executor, not {self.executor!r}: remove it (the "
                "multiprocess executor takes orchestration.max_concurrent)"
            )
        return self


class RuntimeConfig(_Section):
    """How each stage's process sets up its allocator and threads (:func:`embodied_r.runtime.tune_process`).

    Not in the paper (a GPU run has no such knobs); no effect on results, only on speed. The defaults leave glibc and
    torch as they come: on the 2-core EPYC where ``benchmarks/allocator.py`` ran (docs/roofline.md, 2026-12-07),
    keeping freed memory saved no measurable time (system time was 1.5 % of the CPU either way).
    """

    malloc_keep_freed: bool = Field(
        False,
        description="glibc: freed memory stays in the heap for reuse (M_MMAP_MAX 0) instead of being unmapped and "
        "faulted in again every step; false = glibc's defaults. No effect elsewhere than glibc.",
    )
    malloc_trim_threshold_mb: int = Field(
        1024, ge=0, le=2047, description="malloc_keep_freed: free heap top kept before it is returned to the OS."
    )
    malloc_arena_max: int = Field(0, ge=0, description="glibc malloc arenas; 0 = glibc's default (8 per core).")
    torch_threads: int = Field(0, ge=0, description="torch intra-op threads; 0 = torch's default (one per core).")


#: ``storage.options`` keys that hold secrets (DVC's names): they belong in ``.dvc/config.local``, never in params.
_CREDENTIAL_WORDS = ("secret", "password", "passphrase", "token", "access_key", "account_key", "connection_string",
                     "sas")  # fmt: skip


class StorageConfig(_Section):
    """The DVC remote that ``dvc push`` / ``dvc pull`` share the data and the models through.

    ``embodied-r remote`` (run by ``make setup``) writes it into ``.dvc/config``: changing where the lineage is
    shared is a params change, not a code change. Not in the paper (nothing is shared there). Credentials never go
    here (params.yaml is committed and logged with every run): ``dvc remote modify --local <remote> <key> <value>``
    keeps them in the git-ignored ``.dvc/config.local``. S3, GCS, Azure and SSH need DVC's extra of the same name
    (``pip install "dvc[s3]"``) in the DVC environment.
    """

    remote: str = Field("local", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="The remote's name in DVC.")
    url: str = Field(
        ".dvc-storage",
        min_length=1,
        description="A folder (relative to the project root, or a shared mount), s3://bucket/path, gs://bucket/path, "
        "azure://container/path or ssh://user@host/path.",
    )
    options: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="`dvc remote modify` settings other than credentials, e.g. {region: eu-west-1} or {port: 2222}.",
    )

    @field_validator("options")
    @classmethod
    def _no_credentials(cls, value: dict[str, Any]) -> dict[str, Any]:
        secret = sorted(k for k in value if any(word in k.lower() for word in _CREDENTIAL_WORDS))
        if secret:
            raise ValueError(
                f"{', '.join(secret)} is a credential and params.yaml is committed and logged: remove it here and "
                f"run `dvc remote modify --local <remote> {secret[0]} <value>` (kept in .dvc/config.local, git-ignored)"
            )
        return value
