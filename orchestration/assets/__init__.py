"""Asset families, one module each: wiring and metadata around the library stage functions."""

import functools
from pathlib import Path

from embodied_r.code_version import stage_code_version, stage_code_versions

#: The checkout this code location is imported from: its ``dvc.yaml`` lists the code each stage runs.
CHECKOUT = Path(__file__).resolve().parents[2]


@functools.cache
def _code_versions() -> dict[str, str]:
    return stage_code_versions(CHECKOUT)  # once per process: every CLI call loads the definitions


def code_version(asset: str) -> str:
    """The ``code_version`` of ``asset``: the hash of the code its DVC stage (the same name) lists in ``deps``, so
    the UI's "code version changed" follows the same files as ``dvc repro`` (:mod:`embodied_r.code_version`)."""
    return stage_code_version(asset, CHECKOUT, _code_versions())
