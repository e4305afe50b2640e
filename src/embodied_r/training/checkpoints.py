"""Checkpoints a kill cannot leave looking complete, and one writer per checkpoint folder.

Completion marker. transformers writes ``checkpoint-<step>/`` file by file (weights, optimizer, RNG states,
``trainer_state.json``); a process killed in between leaves a folder that ``get_last_checkpoint`` still picks,
and every rerun then fails to load it (``SafetensorError`` on a truncated ``model.safetensors``).
:class:`CompleteCheckpointCallback` writes :data:`CHECKPOINT_COMPLETE` into the folder once transformers has
written everything (after a barrier when several processes train), atomically (temporary file, then rename), with
the size of every file; :func:`last_complete_checkpoint` resumes only from a folder whose marker is there and whose
files still have those sizes, and logs each newer folder it skips. Old checkpoints are rotated by the callback,
after the marker (transformers' own rotation runs before it, and could delete the last complete checkpoint while
the new one is not marked yet), so the trainers pass ``save_total_limit=None`` to transformers.

Writer lock. :func:`run_lock` holds an exclusive ``flock`` on ``<folder>/writer.lock`` for as long as a training
writes into the folder, the holder's pid, host and start time written inside. A second writer is refused with
:class:`RunLockedError` naming the holder (as DVC refuses a second ``dvc repro``). The kernel releases the lock when
its process dies, even by SIGKILL; the next writer then finds the dead holder's record, takes over and says so.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Written last into a checkpoint folder: its presence (and the file sizes it lists) makes the checkpoint complete.
CHECKPOINT_COMPLETE = "checkpoint_complete.json"
#: The writer lock inside a checkpoint folder.
LOCK_FILE = "writer.lock"

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


# ---------------------------------------------------------------------------------------------------------------------
# Complete checkpoints
# ---------------------------------------------------------------------------------------------------------------------


def checkpoint_step(checkpoint: str | Path | None) -> int:
    """The step of a ``checkpoint-<step>`` folder (0 for None)."""
    if checkpoint is None:
        return 0
    match = _CHECKPOINT.match(Path(checkpoint).name)
    if match is None:
        raise ValueError(f"{checkpoint} is not a checkpoint-<step> folder")
    return int(match.group(1))


def checkpoints(output_dir: str | Path) -> list[Path]:
    """The ``checkpoint-<step>`` folders of ``output_dir``, newest (highest step) first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.iterdir() if _CHECKPOINT.match(p.name) and p.is_dir()]
    return sorted(found, key=checkpoint_step, reverse=True)


def _file_sizes(folder: Path) -> dict[str, int]:
    return {
        str(path.relative_to(folder)): path.stat().st_size
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != CHECKPOINT_COMPLETE
    }


def mark_complete(checkpoint: str | Path, step: int) -> None:
    """Write the completion marker of ``checkpoint`` (call it once every file of the checkpoint is written)."""
    checkpoint = Path(checkpoint)
    record = {"step": step, "written": _now(), "files": _file_sizes(checkpoint)}
    _write_atomically(checkpoint / CHECKPOINT_COMPLETE, json.dumps(record, indent=2, sort_keys=True))


def checkpoint_problem(checkpoint: str | Path) -> str | None:
    """Why ``checkpoint`` cannot be resumed from (None: it is complete).

    >>> checkpoint_problem("/no/such/checkpoint-3")
    'no completion marker (killed while saving, or written before markers existed)'
    """
    checkpoint = Path(checkpoint)
    marker = checkpoint / CHECKPOINT_COMPLETE
    if not marker.is_file():
        return "no completion marker (killed while saving, or written before markers existed)"
    try:
        files = json.loads(marker.read_text())["files"]
    except (ValueError, KeyError, TypeError):
        return f"{CHECKPOINT_COMPLETE} is unreadable"
    for name, size in files.items():
        path = checkpoint / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, {size} when it was saved"
    return None


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The newest complete checkpoint of ``output_dir`` (None: none), logging every newer one it skips and why.

    Use it where ``transformers.trainer_utils.get_last_checkpoint`` would be used: that one returns the newest
    folder, complete or not.
    """
    skipped = []
    for checkpoint in checkpoints(output_dir):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            if skipped:
                log.warning(
                    "resuming from %s, the last complete checkpoint; skipped %s", checkpoint.name, "; ".join(skipped)
                )
            return str(checkpoint)
        skipped.append(f"{checkpoint.name} ({problem})")
    if skipped:
        log.warning("no complete checkpoint in %s: training starts over; skipped %s", output_dir, "; ".join(skipped))
    return None


def prune_checkpoints(output_dir: str | Path, keep: int | None) -> list[Path]:
    """Delete the complete checkpoints older than the newest ``keep`` (None: keep all) and every incomplete one;
    returns what was deleted.

    Only the holder of the folder's :func:`run_lock` may call this, once its own checkpoint is marked: an incomplete
    folder is then a killed writer's.
    """
    deleted = []
    complete = 0
    for checkpoint in checkpoints(output_dir):
        if checkpoint_problem(checkpoint) is None:
            complete += 1
            if keep is None or complete <= keep:
                continue
        shutil.rmtree(checkpoint, ignore_errors=True)
        deleted.append(checkpoint)
    if deleted:
        log.info("removed checkpoints %s", ", ".join(p.name for p in deleted))
    return deleted


def __getattr__(name: str) -> Any:
    """:class:`CompleteCheckpointCallback`, built on first use: it subclasses transformers' ``TrainerCallback``, and
    importing this module (the writer lock that every stage's process takes) must not load transformers and torch
    (seconds of start-up for the stages that never train; issue 40)."""
    if name != "CompleteCheckpointCallback":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from transformers import TrainerCallback

    class CompleteCheckpointCallback(TrainerCallback):
        """Marks each checkpoint complete once transformers has saved it, then rotates old checkpoints.

        ``on_save`` runs in every process right after ``Trainer._save_checkpoint``; the processes wait for each other
        (each writes its own RNG state, DeepSpeed its shards) before the main process writes the marker.
        """

        def __init__(self, save_total_limit: int | None) -> None:
            self.save_total_limit = save_total_limit

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
                dist.barrier()
            if args.should_save:
                mark_complete(Path(args.output_dir) / f"checkpoint-{state.global_step}", state.global_step)
                prune_checkpoints(args.output_dir, self.save_total_limit)

    CompleteCheckpointCallback.__qualname__ = name
    globals()[name] = CompleteCheckpointCallback
    return CompleteCheckpointCallback


# ---------------------------------------------------------------------------------------------------------------------
# Writer lock
# ---------------------------------------------------------------------------------------------------------------------


class RunLockedError(RuntimeError):
    """Another live process writes into the folder."""


_held = threading.local()


@contextmanager
def run_lock(folder: str | Path, purpose: str = "training") -> Iterator[dict[str, Any]]:
    """Hold the writer lock of ``folder`` (created when missing) for the ``with`` block; yields the holder record.

    Raises :class:`RunLockedError` naming the holder (pid, host, start time) when another process holds it.
    Re-entrant within a thread (a Dagster asset holds it around training, registration and all, and the training
    function it calls takes it too). A record left by a process that died holding the lock is taken over with a
    warning.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    key = str(path.resolve())
    held: dict[str, list[Any]] = _held.__dict__.setdefault("locks", {})
    if key in held:
        held[key][1] += 1
        try:
            yield held[key][2]
        finally:
            held[key][1] -= 1
        return

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(_refusal(folder, path, _read_record(fd))) from None
        previous = _read_record(fd)
        if previous:
            log.warning(
                "taking over the lock of %s from %s: that process is gone (killed?)",
                folder,
                _describe(previous),
            )
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": _now(),
            "purpose": purpose,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        held[key] = [fd, 1, record]
        try:
            yield record
        finally:
            del held[key]
            os.ftruncate(fd, 0)  # an empty record: released cleanly (a record left behind means its holder died)
    finally:
        os.close(fd)  # closing releases the flock


def lock_holder(folder: str | Path) -> dict[str, Any] | None:
    """The record of the process holding ``folder``'s writer lock (None: free)."""
    path = Path(folder) / LOCK_FILE
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_record(fd) or {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_record(fd: int) -> dict[str, Any]:
    size = os.fstat(fd).st_size
    if not size:
        return {}
    try:
        return json.loads(os.pread(fd, size, 0))
    except ValueError:
        return {"pid": "?", "host": "?", "started": "?"}


def _describe(record: dict[str, Any]) -> str:
    return (
        f"{record.get('purpose', 'a training')} (pid {record.get('pid', '?')} on host {record.get('host', '?')}, "
        f"started {record.get('started', '?')})"
    )


def _refusal(folder: Path, path: Path, record: dict[str, Any]) -> str:
    holder = _describe(record) if record else "another process (it has not written its record yet)"
    return (
        f"{folder} is locked by {holder}, which is writing its checkpoints there: the same data and settings are "
        f"being trained already. Wait for that run to finish (its result is then reused or resumed), or stop it "
        f"(kill {record.get('pid', '<pid>')} on host {record.get('host', '?')}) and run again; "
        f"the lock ({path.name}) is released as soon as that process ends."
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


__all__ = [
    "CHECKPOINT_COMPLETE",
    "LOCK_FILE",
    "CompleteCheckpointCallback",  # noqa: F822 — built on first use by __getattr__
    "RunLockedError",
    "checkpoint_problem",
    "checkpoint_step",
    "checkpoints",
    "last_complete_checkpoint",
    "lock_holder",
    "mark_complete",
    "prune_checkpoints",
    "run_lock",
]
