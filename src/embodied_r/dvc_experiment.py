"""Run the lineage under profiles as a DVC experiment, leaving ``params.yaml`` as committed.

``embodied-r demo --profile a,b`` (``make demo PROFILE=a,b``): the profiles composed in order on top of the params
file (:func:`embodied_r.profiles.compose_profiles`, validated first) are written into it for the duration of one
``dvc exp run -n NAME``. DVC commits that run as an experiment: a git ref holding exactly the params file and the
``dvc.lock`` it ran with, with its outputs in DVC's cache, so the run is reproducible from committed refs
(``dvc exp show``, ``dvc exp apply NAME``, ``dvc exp push REMOTE NAME``). Then — also after a failure or Ctrl-C —
the params file and ``dvc.lock`` get back their bytes of before the run, so ``git status`` is as it was; unless
``keep``, the workspace state a user who wants the change asked for (the same as ``dvc exp apply NAME``).

The outputs of the run stay in the workspace (``data/``): ``dvc status`` then reports the stages whose outputs
differ from the restored ``dvc.lock``, which is true, and ``dvc repro`` brings the committed params' outputs back
(from DVC's run cache when they were produced before).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from embodied_r.errors import UserError
from embodied_r.profiles import Composition, write_composition

log = logging.getLogger(__name__)

LOCK_FILE = "dvc.lock"
#: Seconds DVC and its stage get to stop after Ctrl-C before they are sent SIGTERM.
STOP_GRACE_SECONDS = 20.0


class DvcNotFoundError(UserError, FileNotFoundError):
    """No ``dvc`` executable to run the experiment with."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM while the experiment ran."""


@dataclass(frozen=True)
class ExperimentRun:
    """What :func:`run_profile_experiment` did."""

    name: str
    returncode: int
    kept: bool
    #: Files ``git status`` lists after the run that it did not list before (the params file and dvc.lock restored).
    left_changed: tuple[str, ...] = ()


def find_dvc(root: Path) -> str:
    """The ``dvc`` to run: the one on ``PATH`` (``make`` puts ``.venv/bin`` first), else ``<root>/.venv-dvc``."""
    found = shutil.which("dvc") or shutil.which("dvc", path=str(root / ".venv-dvc" / "bin"))
    if not found:
        raise DvcNotFoundError(
            "dvc is not installed: run `make setup` (it installs DVC in .venv-dvc and links it into .venv/bin), "
            "or put a dvc executable on PATH"
        )
    return found


def default_name(composition: Composition, now: dt.datetime | None = None) -> str:
    """``tiny+cpu-long-20261207-2102``: the composition and when (DVC refuses a name used on the same commit)."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{composition.name}-{stamp}"


@contextmanager
def files_restored(paths: Sequence[Path], *, keep: bool) -> Iterator[None]:
    """On exit — normal, an exception or Ctrl-C — ``paths`` get back their bytes of the entry (a file absent at
    the entry is removed); with ``keep`` they are left as the block made them."""
    before = {path: path.read_bytes() if path.is_file() else None for path in paths}
    try:
        yield
    finally:
        if not keep:
            with _signals_ignored():  # a second Ctrl-C must not leave a file half restored
                for path, content in before.items():
                    if content is None:
                        path.unlink(missing_ok=True)
                    else:
                        path.write_bytes(content)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """Ctrl-C and SIGTERM ignored inside (they are what is being cleaned up after)."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a killed ``make``, a CI timeout) interrupts like Ctrl-C, so the files are restored too."""

    def handler(signum, frame):
        raise Interrupted(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _wait(proc: subprocess.Popen) -> int:
    """``proc``'s exit code; on Ctrl-C its process group is stopped (SIGINT, SIGTERM, SIGKILL) before re-raising.

    DVC runs in a process group of its own, so the signal reaches the stage it runs as well: DVC alone ignores
    SIGINT while a stage runs (it expects the terminal to send it to the whole group).
    """
    try:
        return proc.wait()
    except KeyboardInterrupt:
        with _signals_ignored():  # DVC must be stopped before the files are restored, or it may write after them
            for send, grace in ((signal.SIGINT, STOP_GRACE_SECONDS), (signal.SIGTERM, 10.0), (signal.SIGKILL, None)):
                try:
                    os.killpg(proc.pid, send)
                except ProcessLookupError:  # the whole group is gone
                    break
                try:
                    proc.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
        raise


def _git_changes(root: Path) -> set[str] | None:
    """``git status --porcelain`` lines of ``root`` (None outside a git repository or without git)."""
    try:
        proc = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return None
    return set(proc.stdout.splitlines()) if proc.returncode == 0 else None


def run_profile_experiment(
    root: Path,
    composition: Composition,
    *,
    params_file: str = "params.yaml",
    name: str | None = None,
    targets: Sequence[str] = (),
    keep: bool = False,
    dvc: str | None = None,
) -> ExperimentRun:
    """``dvc exp run -n NAME [targets]`` with ``composition`` in the params file, which is restored afterwards.

    The params file and ``dvc.lock`` get their bytes of before back (unless ``keep``) even when the run fails or is
    interrupted; Ctrl-C or SIGTERM stops DVC first, then re-raises :class:`KeyboardInterrupt` once restored.
    """
    dvc = dvc or find_dvc(root)
    name = name or default_name(composition)
    git_before = _git_changes(root)
    argv = [dvc, "exp", "run", "-n", name, *targets]
    with _sigterm_as_interrupt(), files_restored([root / params_file, root / LOCK_FILE], keep=keep):
        write_composition(root / params_file, composition, root)
        log.info("running %s", " ".join(argv))
        sys.stdout.flush()  # our lines before DVC's, which writes to the same terminal
        returncode = _wait(subprocess.Popen(argv, cwd=root, process_group=0))
    git_after = _git_changes(root)
    left = () if keep or git_before is None or git_after is None else tuple(sorted(git_after - git_before))
    return ExperimentRun(name=name, returncode=returncode, kept=keep, left_changed=left)


__all__ = [
    "DvcNotFoundError",
    "ExperimentRun",
    "default_name",
    "files_restored",
    "find_dvc",
    "run_profile_experiment",
]
