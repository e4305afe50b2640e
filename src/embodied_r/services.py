"""Start and stop the Dagster and MLflow UIs reliably.

``dagster dev`` started from a script inherits ignored signals (a background job in a
non-interactive shell ignores SIGINT), and then it ignores SIGTERM too. The UIs are
therefore started in their own process group with default signal handling, their pid
written to ``.dagster_home/<name>.pid``, and stopped by signalling the whole group.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)


def _default_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def pid_file(home: Path, name: str) -> Path:
    return home / f"{name}.pid"


def run_service(name: str, argv: list[str], home: Path, env: dict[str, str] | None = None) -> int:
    """Run ``argv`` in the foreground in its own process group; Ctrl-C or ``stop`` ends it."""
    proc = subprocess.Popen(argv, preexec_fn=_default_signals, start_new_session=True, env=env)
    pidf = pid_file(home, name)
    pidf.write_text(str(proc.pid))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        stop_group(proc.pid)
        return 130
    finally:
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


def stop_services(home: Path, names: tuple[str, ...] = ("dagster-ui", "mlflow-ui")) -> list[str]:
    """Stop every UI started by :func:`run_service`; returns the names that were running."""
    stopped = []
    for name in names:
        pidf = pid_file(home, name)
        if not pidf.exists():
            continue
        if stop_group(int(pidf.read_text().strip())):
            stopped.append(name)
        pidf.unlink(missing_ok=True)
    return stopped


def dagster_ui_argv(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "dagster", "dev", "-m", "orchestration.definitions", "-h", host, "-p", str(port)]


def mlflow_ui_argv(backend_uri: str, artifacts: Path, host: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_uri,
        "--default-artifact-root", artifacts.as_uri(),
        "--host", host, "--port", str(port),
    ]  # fmt: skip
