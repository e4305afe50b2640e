"""Model pointers: the small JSON files in ``data/models/`` that say where each stage's model is.

Each model stage writes one (``base_lm.json``, ``warm_lm.json``, ``sft_lm.json``, ``grpo_lm.json``); the weights
live in the model cache, the training caches or the MLflow registry. The stages downstream read them here, so one
module knows their names and shapes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from embodied_r.data.records import write_json
from embodied_r.errors import UserError

#: ``base_lm``: ``{"source", "path", "sha256", "revision"}``.
BASE_LM_POINTER = "base_lm.json"
#: ``warm_lm``: ``{"enabled", "path", "base", ...}`` (the base LM passed through when the cold start is off).
WARM_LM_POINTER = "warm_lm.json"
#: ``sft_lm``: ``{"enabled", "path", ...}`` (``path`` None when the SFT baseline is off).
SFT_LM_POINTER = "sft_lm.json"
#: ``grpo_lm``: final model path, MLflow model URI, registry version, run id, training key.
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


def read_base_lm_path(models_dir: str | Path) -> Path:
    """The local folder of the base LM recorded by ``base_lm``."""
    return Path(read_pointer(models_dir, BASE_LM_POINTER)["path"])
