"""The model folders of the lineage: ``data/models/<stage>/``, one per model stage, each a DVC output.

Every model the lineage produces — the base LM, the warm start, the SFT baseline and the GRPO model — is a plain
Hugging Face folder in ``data/models/<stage>/`` next to its pointer (:mod:`embodied_r.models.pointers`). DVC caches
and pushes these folders with the data, so a second machine gets the models with ``dvc pull`` instead of training
them again, and ``dvc status`` notices a deleted or changed model. Training checkpoints (for resume) stay in
``.cache/`` outside DVC; only the final model is installed here.

A switched-off stage (``cold_start.enabled: false``, ``sft.enabled: false``) still has its folder — DVC wants every
output it declares — holding only :data:`DISABLED_FILE`, which says why.

:func:`dvc_md5` is the content hash DVC records for a folder in ``dvc.lock`` (``<md5>.dir``): the MLflow registry
tags each version with it, so a registered version and a DVC-tracked folder can be matched on any machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from embodied_r.layout import Layout

#: The stages whose output is a model folder, in lineage order.
MODEL_STAGES = ("base_lm", "warm_lm", "sft_lm", "grpo_lm")
#: The one file in the folder of a switched-off stage.
DISABLED_FILE = "disabled.json"
#: Read at a time when hashing (DVC's own chunk size is larger; any size gives the same md5).
_CHUNK = 1 << 20


def model_folder(layout: Layout, stage: str) -> Path:
    """``data/models/<stage>/``: where ``stage``'s model lives (a DVC output)."""
    if stage not in MODEL_STAGES:
        raise ValueError(f"unknown model stage {stage!r}; the model stages are {', '.join(MODEL_STAGES)}")
    return layout.models / stage


def install_model(source: str | Path, layout: Layout, stage: str) -> Path:
    """Copy the model folder ``source`` into ``data/models/<stage>/``, replacing what is there; returns the folder.

    Copied, not linked: the trainers rewrite their own ``final/`` folder when a training resumes, and DVC must see
    the model it cached. The copy is built next to its place and renamed into it, so a killed stage never leaves
    half a model where the next stage would read it.
    """
    source, target = Path(source), model_folder(layout, stage)
    if not (source / "config.json").is_file():
        raise FileNotFoundError(f"{source} is not a model folder (no config.json): cannot install it as {stage}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{stage}-", dir=target.parent))
    try:
        shutil.copytree(source, staging / "model", symlinks=False)  # a hub snapshot's symlinks become files
        _replace(staging / "model", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def install_disabled(layout: Layout, stage: str, reason: str) -> Path:
    """Leave ``data/models/<stage>/`` holding only :data:`DISABLED_FILE` (``reason``): the stage is switched off."""
    target = model_folder(layout, stage)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    (target / DISABLED_FILE).write_text(json.dumps({"enabled": False, "reason": reason}, indent=2) + "\n")
    return target


def _replace(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``; an existing ``target`` is moved aside first and removed after."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        target.rename(old)
    new.rename(target)
    if old is not None:
        shutil.rmtree(old)


def dvc_md5(folder: str | Path) -> str:
    """The hash DVC records for ``folder`` in ``dvc.lock`` (``md5: <hex>.dir``), computed without DVC.

    DVC 3 hashes every file with a plain md5 of its bytes, lists ``{"md5", "relpath"}`` per file sorted by path,
    and takes the md5 of that list as JSON (``json.dumps(..., sort_keys=True)``), suffixed ``.dir``.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.txt").write_text("a")
    >>> dvc_md5(d)
    '1710014904e6b7e979d3965269bd0f83.dir'
    """
    folder = Path(folder)
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.md5()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
        entries.append({"md5": digest.hexdigest(), "relpath": path.relative_to(folder).as_posix()})
    entries.sort(key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"
