"""The UIs start on 127.0.0.1 from a script and ``embodied-r stop`` really stops them.

Started as a background job of a non-interactive shell (SIGINT ignored, as ``make ui &`` does), ``dagster dev``
would also ignore SIGTERM; the CLI starts each UI in its own process group with default signal handling, so
``stop`` ends the whole group (webserver and code server included).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize(("command", "path"), [("ui", "/server_info"), ("mlflow-ui", "/health")])
def test_ui_serves_on_loopback_and_stop_ends_it(command, path, tmp_path: Path):
    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())))
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(root / ".dagster_home"), "PYTHONPATH": str(PROJECT_ROOT)}
    argv = [sys.executable, "-m", "embodied_r.cli", "--root", str(root), command, "--port", str(port)]

    def ignore_sigint() -> None:  # what a background job of a non-interactive shell inherits
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen(argv, env=env, preexec_fn=ignore_sigint, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        assert _wait_http(f"http://127.0.0.1:{port}{path}", timeout=120), f"{command} did not come up on {port}"
        pid_file = root / ".dagster_home" / f"{'dagster-ui' if command == 'ui' else 'mlflow-ui'}.pid"
        pgid = int(pid_file.read_text())
        stop = subprocess.run(
            [sys.executable, "-m", "embodied_r.cli", "--root", str(root), "stop"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert stop.returncode == 0 and "stopped:" in stop.stdout
        assert proc.wait(timeout=30) is not None
        deadline = time.monotonic() + 20
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _group_alive(pgid), "the UI's process group outlived `embodied-r stop`"
        assert not pid_file.exists()
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
