"""The UIs start on 127.0.0.1 from a script, one at a time, and ``embodied-r stop`` really stops them.

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

from embodied_r.services import read_pid_file
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
    argv = [sys.executable, "-m", "orchestration.cli", "--root", str(root), command, "--port", str(port)]

    def ignore_sigint() -> None:  # what a background job of a non-interactive shell inherits
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen(argv, env=env, preexec_fn=ignore_sigint, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        assert _wait_http(f"http://127.0.0.1:{port}{path}", timeout=120), f"{command} did not come up on {port}"
        pid_file = root / ".dagster_home" / f"{'dagster-ui' if command == 'ui' else 'mlflow-ui'}.pid"
        pgid = read_pid_file(pid_file)["pid"]
        # A second start is refused, naming the running one (it overwrote the pid file and orphaned the first).
        second = subprocess.run([*argv[:-1], str(_free_port())], env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1, second.stderr
        assert f"(pid {pgid}, http://127.0.0.1:{port}) is already running" in second.stderr
        assert read_pid_file(pid_file)["pid"] == pgid
        stop = subprocess.run(
            [sys.executable, "-m", "orchestration.cli", "--root", str(root), "stop"],
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


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_listening(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _listening(port):
            return True
        time.sleep(0.2)
    return False


#: A real small server started through run_service the way `embodied-r ui` starts dagster (its own process, pid file).
_START = """
import sys
from pathlib import Path
from embodied_r.services import run_service
port = int(sys.argv[2])
argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
sys.exit(run_service("dagster-ui", argv, Path(sys.argv[1]), host="127.0.0.1", port=port))
"""


def test_a_second_start_is_refused_naming_the_running_ui_and_stop_stops_it(tmp_path: Path):
    """Issue 36 item 16: a second start overwrote the pid file, orphaning the first UI (stop then missed it)."""
    from embodied_r.services import ServiceError, read_pid_file, run_service, stop_services

    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")}
    first = subprocess.Popen([sys.executable, "-c", _START, str(tmp_path), str(port)], env=env)
    try:
        assert _wait_listening(port, timeout=30)
        record = read_pid_file(tmp_path / "dagster-ui.pid")
        assert record["port"] == port and record["pid"] != first.pid, "the server's pid, not the launcher's"

        with pytest.raises(ServiceError, match=rf"dagster-ui \(pid {record['pid']}, http://127.0.0.1:{port}\) is "
                           r"already running: open it, or stop it first with `embodied-r stop`"):  # fmt: skip
            run_service("dagster-ui", [sys.executable, "-c", "pass"], tmp_path, host="127.0.0.1", port=_free_port())
        assert read_pid_file(tmp_path / "dagster-ui.pid") == record, "the running UI's pid file is untouched"

        stopped, stale = stop_services(tmp_path)
        assert stopped == [f"dagster-ui (pid {record['pid']}, http://127.0.0.1:{port})"] and stale == []
        assert first.wait(timeout=30) is not None
        assert not _listening(port)
        assert not (tmp_path / "dagster-ui.pid").exists()
    finally:
        if first.poll() is None:
            first.kill()


def test_a_taken_port_is_refused_before_starting(tmp_path: Path):
    from embodied_r.services import ServiceError, run_service

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServiceError, match=rf"port {port} on 127.0.0.1 is in use by another program"):
            run_service("mlflow-ui", [sys.executable, "-c", "pass"], tmp_path, host="127.0.0.1", port=port)
    assert not (tmp_path / "mlflow-ui.pid").exists()


def test_a_stale_pid_file_is_cleaned_up_by_stop_and_by_the_next_start(tmp_path: Path):
    from embodied_r.services import run_service, stop_services

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs: what a killed UI or a restarted machine leaves behind
    pid_file = tmp_path / "dagster-ui.pid"
    pid_file.write_text(str(dead.pid))  # the format of earlier versions: the pid alone
    assert stop_services(tmp_path) == ([], [f"dagster-ui (pid {dead.pid})"])
    assert not pid_file.exists()

    pid_file.write_text(str(dead.pid))
    argv = [sys.executable, "-c", "pass"]
    assert run_service("dagster-ui", argv, tmp_path, host="127.0.0.1", port=_free_port()) == 0
    assert not pid_file.exists()


def test_ui_with_a_missing_params_file_fails_before_starting(tmp_path: Path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / ".dagster_home"), "PYTHONPATH": str(PROJECT_ROOT)}
    port = _free_port()
    argv = [sys.executable, "-m", "orchestration.cli", "--root", str(tmp_path), "--params", "nosuch.yaml", "ui",
            "--port", str(port)]  # fmt: skip
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "nosuch.yaml: no such params file" in proc.stderr and "Traceback" not in proc.stderr
    assert "Dagster UI on" not in proc.stdout
    assert not (tmp_path / ".dagster_home" / "dagster-ui.pid").exists() and not _listening(port)
