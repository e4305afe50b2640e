"""The code version of each pipeline stage, read from the one list of what a stage runs: ``dvc.yaml``'s deps.

DVC reruns a stage when a file in its ``deps`` changes; Dagster marks an asset stale ("code version changed")
when its ``code_version`` changes. Both follow the same list: a stage's code version is a hash of the contents
of its code deps — the files and folders under ``src/`` and ``orchestration/``, not the data it reads under
``${data_dir}`` (Dagster tracks those through the asset graph) — so editing a file changes the versions of
exactly the stages that list it. Each Dagster asset is the DVC stage of the same name.

>>> import pathlib, tempfile
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"a": {"deps": ["src/a.py", "${data_dir}/raw"]}}}))
>>> (root / "src").mkdir(); _ = (root / "src" / "a.py").write_text("x = 1\\n")
>>> before = stage_code_version("a", root)
>>> _ = (root / "src" / "a.py").write_text("x = 2\\n")
>>> stage_code_version("a", root) != before
True
>>> import shutil; shutil.rmtree(root)
"""

from __future__ import annotations

from pathlib import Path

import yaml

from embodied_r.errors import UserError
from embodied_r.hashing import sha256_file, short_hash

#: The file that lists each stage's deps, at the project root.
DVC_FILE = "dvc.yaml"
#: The top-level folders whose files are code (a dep elsewhere is data or configuration).
CODE_FOLDERS = ("src", "orchestration")
_CODE_ROOTS = [(folder,) for folder in CODE_FOLDERS]
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
#: Bytecode the interpreter writes next to the sources: not code anyone edited.
_SKIPPED_DIRS = {"__pycache__"}
_SKIPPED_SUFFIXES = {".pyc", ".pyo"}


class StageCodeError(UserError, ValueError):
    """``dvc.yaml`` is missing, has no stage of an asset's name, or lists a code dep that does not exist."""


def _code_deps(deps: list) -> list[str]:
    """The deps of a stage that are code: paths under :data:`CODE_FOLDERS` (no ``${...}`` data paths)."""
    return [dep for dep in deps if isinstance(dep, str) and "${" not in dep and Path(dep).parts[:1] in _CODE_ROOTS]


def _files(root: Path, dep: str, stage: str) -> list[Path]:
    """The files ``dep`` names (itself, or every file under a folder but bytecode)."""
    path = root / dep
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise StageCodeError(
            f"{root / DVC_FILE}: stage {stage!r} lists the dep {dep!r}, which does not exist: fix the path in its "
            "deps (or remove it if the stage no longer runs that code)"
        )
    return [
        p
        for p in path.rglob("*")
        if p.is_file() and p.suffix not in _SKIPPED_SUFFIXES and not _SKIPPED_DIRS.intersection(p.parts)
    ]


def stage_code_versions(root: str | Path) -> dict[str, str]:
    """Every stage's code version of the project at ``root``: a short hash of the contents and relative paths of
    its code deps, in sorted path order (so it depends on nothing but those files). Reads ``dvc.yaml`` once and
    each file once."""
    root = Path(root)
    dvc_file = root / DVC_FILE
    try:
        # libyaml's loader when built with it: this runs on every import of the code location
        stages = (yaml.load(dvc_file.read_text(), Loader=_LOADER) or {}).get("stages") or {}
    except FileNotFoundError:
        raise StageCodeError(
            f"{dvc_file} not found: the stages' code versions come from its deps; run from a checkout of the "
            "project (the folder holding dvc.yaml, src/ and orchestration/)"
        ) from None
    digests: dict[Path, str] = {}
    versions = {}
    for stage, spec in stages.items():
        files = {f for dep in _code_deps((spec or {}).get("deps") or []) for f in _files(root, dep, stage)}
        parts = []
        for f in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
            if f not in digests:
                digests[f] = sha256_file(f)
            parts.append(f"{f.relative_to(root).as_posix()}:{digests[f]}")
        versions[stage] = short_hash(*parts)
    return versions


def stage_code_version(stage: str, root: str | Path, versions: dict[str, str] | None = None) -> str:
    """The code version of ``stage`` (a ``dvc.yaml`` stage, and the Dagster asset of the same name) at ``root``;
    ``versions``: :func:`stage_code_versions` of ``root`` already read (many stages, one read)."""
    versions = stage_code_versions(root) if versions is None else versions
    if stage not in versions:
        raise StageCodeError(
            f"{Path(root) / DVC_FILE} has no stage {stage!r}: each Dagster asset is the DVC stage of the same name; "
            f"add the stage (with the code it runs in its deps) or rename the asset (stages: {', '.join(versions)})"
        )
    return versions[stage]
