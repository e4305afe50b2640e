"""Model pointers: the small JSON files in ``data/models/`` that say where each stage's model is.

Each model stage writes one (``base_lm.json``, ``warm_lm.json``, ``sft_lm.json``, ``grpo_lm.json``) next to its
model folder (``data/models/<stage>/``, a DVC output: :mod:`embodied_r.models.folders`). The stages downstream read
them here, so one module knows their names and shapes.

A pointer's ``path`` is relative to the project root (``data/models/warm_lm``), so a pointer pulled onto another
machine names the same model there; :func:`resolve_model_path` turns it into a path on this one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from embodied_r.data.records import write_json
from embodied_r.errors import UserError
from embodied_r.layout import Layout

#: ``base_lm``: ``{"source", "path", "sha256", "revision"}``.
BASE_LM_POINTER = "base_lm.json"
#: ``warm_lm``: ``{"enabled", "path", "base", ...}`` (the base LM passed through when the cold start is off).
WARM_LM_POINTER = "warm_lm.json"
#: ``sft_lm``: ``{"enabled", "path", ...}`` (``path`` None when the SFT baseline is off).
SFT_LM_POINTER = "sft_lm.json"
#: ``grpo_lm``: ``{"path", "model_uri", "registered_model", "version", "run_id", "training_key"}`` (the version the
#: training registered; the evaluation finds or registers the one of the model folder it evaluates).
GRPO_POINTER = "grpo_lm.json"


class MissingUpstreamError(UserError, FileNotFoundError):
    """A stage's input that an upstream asset writes is not there: materialize that asset first."""


def require_upstream(path: str | Path, asset: str) -> Path:
    """``path`` if the upstream ``asset`` wrote it; otherwise :class:`MissingUpstreamError` naming the fix."""
    path = Path(path)
    if not path.exists():
        fix = f"`embodied-r materialize {asset}`, or `dvc repro`"
        raise MissingUpstreamError(f"{path} is missing: materialize {asset} first ({fix})")
    return path


def read_pointer(models_dir: str | Path, name: str) -> dict[str, Any]:
    """The pointer ``name`` (e.g. :data:`WARM_LM_POINTER`) its stage wrote into ``models_dir``."""
    return json.loads(require_upstream(Path(models_dir) / name, name.removesuffix(".json")).read_text())


def write_pointer(models_dir: str | Path, name: str, pointer: dict[str, Any]) -> Path:
    """Write the pointer ``name`` into ``models_dir`` (pretty, key-sorted JSON: byte-deterministic)."""
    path = Path(models_dir) / name
    write_json(path, pointer)
    return path


def project_path(layout: Layout, path: str | Path) -> str:
    """``path`` as a pointer holds it: relative to the project root, ``/``-separated (the same on every machine).

    >>> project_path(Layout(root=Path("/p")), "/p/data/models/warm_lm")
    'data/models/warm_lm'
    """
    path = Path(path)
    if not path.is_absolute():
        return path.as_posix()
    for root in (layout.root, layout.root.resolve()):
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    raise ValueError(f"{path} is outside the project {layout.root}: a pointer names models inside it")


def resolve_model_path(layout: Layout, path: str | Path) -> Path:
    """A pointer's ``path`` on this machine: relative to the project root (an absolute one, as pointers written
    before they were relative held, is taken as it is)."""
    return layout.root / path


def read_model_path(layout: Layout, name: str) -> Path | None:
    """The model folder the pointer ``name`` names, on this machine (``None``: the stage is off and names none)."""
    path = read_pointer(layout.models, name).get("path")
    return None if path is None else resolve_model_path(layout, path)


def read_base_lm_path(layout: Layout) -> Path:
    """The local folder of the base LM recorded by ``base_lm`` (``data/models/base_lm``)."""
    return resolve_model_path(layout, read_pointer(layout.models, BASE_LM_POINTER)["path"])
