"""MLflow and DVC agree: each registered version of the GRPO model names the DVC-tracked folder it was logged from.

A version registered from ``data/models/grpo_lm/`` carries, as version tags, the folder's content hash as DVC
records it in ``dvc.lock`` (:data:`MODEL_MD5_TAG`, :func:`embodied_r.models.folders.dvc_md5`), the folder
(:data:`MODEL_PATH_TAG`, relative to the project root) and the git commit of the code that produced it, with
whether the working tree had uncommitted changes (:data:`GIT_COMMIT_TAG`, :data:`GIT_DIRTY_TAG`).

:func:`find_version` looks a folder's version up by its hash: how the evaluation finds the version of a model that
DVC restored (from its run cache, or ``dvc pull`` on another machine) without the training that registered it
running here — and registers it when this registry has none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Version tags: the model folder's DVC hash (``<md5>.dir``) and its path relative to the project root.
MODEL_MD5_TAG = "embodied_r.model_md5"
MODEL_PATH_TAG = "embodied_r.model_path"
#: Version tags: the git commit of the code that produced the model, and ``true`` when the tree was dirty.
GIT_COMMIT_TAG = "git.commit"
GIT_DIRTY_TAG = "git.dirty"
#: Version tag: who registered it (``grpo_lm`` after training; ``evaluation_results`` for a model DVC restored).
REGISTERED_BY_TAG = "embodied_r.registered_by"


def lineage_tags(root: Path, folder: Path, md5: str, registered_by: str) -> dict[str, str]:
    """The version tags of the model in ``folder`` (``md5`` its :func:`~embodied_r.models.folders.dvc_md5`)."""
    from embodied_r.evaluation.report import git_commit
    from embodied_r.layout import Layout
    from embodied_r.models.pointers import project_path

    git = git_commit(root)
    return {
        MODEL_MD5_TAG: md5,
        MODEL_PATH_TAG: project_path(Layout(root=root), folder),
        GIT_COMMIT_TAG: git["commit"] or "unknown",
        GIT_DIRTY_TAG: "unknown" if git["dirty"] is None else str(git["dirty"]).lower(),
        REGISTERED_BY_TAG: registered_by,
    }


def tag_version(client: Any, name: str, version: str, tags: dict[str, str]) -> None:
    """Set ``tags`` on version ``version`` of the registered model ``name``."""
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value)


def find_version(client: Any, name: str, md5: str, prefer: str | None = None) -> Any | None:
    """The version of ``name`` registered from a folder whose DVC hash is ``md5``, or ``None``.

    ``prefer`` (e.g. the version the pointer records) wins when it carries the hash; otherwise the newest such
    version. A registry without the model finds nothing.
    """
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException:  # no such registered model yet
        return None
    matching = [v for v in versions if dict(v.tags).get(MODEL_MD5_TAG) == md5]
    for version in matching:
        if prefer is not None and str(version.version) == str(prefer):
            return version
    return max(matching, key=lambda v: int(v.version), default=None)
