"""Asset families, one module each."""

from pathlib import Path

import dagster as dg


def require_upstream(path: Path, asset: str) -> Path:
    """``path`` if an upstream asset wrote it; otherwise fail naming the asset to materialize first."""
    if not Path(path).exists():
        fix = f"`embodied-r materialize {asset}`, or `dvc repro`"
        raise dg.Failure(description=f"{path} is missing: materialize {asset} first ({fix})")
    return Path(path)
