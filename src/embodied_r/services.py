"""Start and stop the Dagster and MLflow UIs reliably.

``dagster dev`` started from a script inherits ignored signals (a background job in a
non-interactive shell ignores SIGINT), and then it ignores SIGTERM too. The UIs are
therefore started in their own process group with default signal handling, their pid (with
address and command line) written to ``.dagster_home/<name>.pid``, and stopped by signalling the
whole group. One UI of each kind per Dagster home: a second start is refused while the first runs,
and a pid file whose process is gone is cleaned up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from embodied_r.errors import UserError

log = logging.getLogger(__name__)


def _default_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


class ServiceError(UserError):
    """A UI cannot start: one already runs, or its port is taken."""


def pid_file(home: Path, name: str) -> Path:
    return home / f"{name}.pid"


def _cmdline(pid: int) -> list[str] | None:
    """The command line of process ``pid`` (Linux ``/proc``), or None where it cannot be read."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return None


def read_pid_file(path: Path) -> dict | None:
    """The record of a started UI: ``pid``, ``host``, ``port``, ``cmdline``; None when there is none.

    A pid file of an earlier version holds only the pid.
    """
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    try:
        record = json.loads(text) if text.startswith("{") else {"pid": int(text)}
    except ValueError:
        return {"pid": 0}  # unreadable: treated as stale
    return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else {"pid": 0}


def is_running(record: dict) -> bool:
    """Whether the process of a pid-file ``record`` still runs (and is still that program, not a reused pid)."""
    pid = record["pid"]
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        try:  # the leader is gone; its process group (the UI's workers) may still hold the port
            os.killpg(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    except PermissionError:
        return False  # another user's process: the pid was reused
    cmdline = _cmdline(pid)
    return not (cmdline is not None and record.get("cmdline") and cmdline != record["cmdline"])


def _describe(name: str, record: dict) -> str:
    where = f", http://{record['host']}:{record['port']}" if "port" in record else ""
    return f"{name} (pid {record['pid']}{where})"


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a socket in TIME_WAIT is no user
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _claim(pidf: Path, name: str) -> None:
    """Create ``pidf`` for this process, or raise :class:`ServiceError` when ``name`` already runs.

    The file is created exclusively, so of two starts at the same moment one is refused; a pid file whose
    process is gone (killed, machine restarted) is removed first.
    """
    for _ in range(2):
        try:
            fd = os.open(pidf, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            record = read_pid_file(pidf)
            if record is not None and is_running(record):
                raise ServiceError(
                    f"{_describe(name, record)} is already running: open it, or stop it first with "
                    "`embodied-r stop` (`make stop`)"
                ) from None
            log.warning("removing the stale pid file %s (pid %s is not running)", pidf, record and record["pid"])
            pidf.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as out:  # this process holds the claim until the service's pid replaces it
            json.dump({"pid": os.getpid(), "cmdline": _cmdline(os.getpid())}, out)
        return
    raise ServiceError(f"{pidf} keeps reappearing: another {name} is starting; try again")


def run_service(
    name: str,
    argv: list[str],
    home: Path,
    env: dict[str, str] | None = None,
    *,
    host: str,
    port: int,
    on_start: Callable[[], None] | None = None,
) -> int:
    """Run ``argv`` in the foreground in its own process group; Ctrl-C or ``stop`` ends it.

    Refuses (:class:`ServiceError`) while ``name`` already runs from this ``home`` (its pid file names a live
    process) or while ``port`` is taken, instead of starting a second one and orphaning the first.
    ``on_start`` is called once the start is allowed (the command line says where the UI will be).
    """
    pidf = pid_file(home, name)
    _claim(pidf, name)
    proc = None
    try:
        if not _port_free(host, port):
            raise ServiceError(
                f"port {port} on {host} is in use by another program: pick another port with --port, or stop it"
            )
        if on_start is not None:
            on_start()
        proc = subprocess.Popen(argv, preexec_fn=_default_signals, start_new_session=True, env=env)
        record = {"pid": proc.pid, "host": host, "port": port, "cmdline": [str(a) for a in argv]}
        tmp = pidf.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(pidf)  # atomic: a concurrent reader sees the claim or the record, never half of one
        return proc.wait()
    except KeyboardInterrupt:
        if proc is not None:
            stop_group(proc.pid)
        return 130
    finally:
        record = read_pid_file(pidf)
        if record is not None and record["pid"] in (os.getpid(), proc.pid if proc else None):
            pidf.unlink(missing_ok=True)


def stop_group(pid: int, timeout: float = 15.0) -> bool:
    """SIGTERM the process group of ``pid``, then SIGKILL it after ``timeout`` s. True if it was running."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    log.warning("process group %d did not stop on SIGTERM; killing it", pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True


def stop_services(home: Path, names: tuple[str, ...] = ("dagster-ui", "mlflow-ui")) -> tuple[list[str], list[str]]:
    """Stop every UI started by :func:`run_service`; returns (the UIs stopped, the stale pid files removed),
    each described by name, pid and address."""
    stopped, stale = [], []
    for name in names:
        pidf = pid_file(home, name)
        record = read_pid_file(pidf)
        if record is None:
            continue
        if is_running(record) and stop_group(record["pid"]):
            stopped.append(_describe(name, record))
        else:
            stale.append(_describe(name, record))
        pidf.unlink(missing_ok=True)
    return stopped, stale


def mlflow_ui_argv(backend_uri: str, artifacts: Path, host: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_uri,
        "--default-artifact-root", artifacts.as_uri(),
        "--host", host, "--port", str(port),
    ]  # fmt: skip
