"""``embodied-r demo --profile``: the lineage under composed profiles as a DVC experiment, in a real git + DVC repo.

Each test copies params.yaml and profiles/ into a fresh repository with a pipeline of its own (the project's
``raw_videos`` stage, or a one-stage pipeline that sleeps or fails), then runs the real command in a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT

GIT_USER = ["-c", "user.name=ci", "-c", "user.email=ci@localhost"]


def _run(argv: list[str], cwd: Path, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _embodied_r(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestration.cli", *args]


def _repo(root: Path, dvc_yaml: dict, ignored: tuple[str, ...] = (), code: bool = False) -> Path:
    """A git + DVC repository at ``root`` with the project's params.yaml and profiles and ``dvc_yaml``, committed
    (with ``code``, src/ and orchestration/ too: what the project's stages list in their deps)."""
    if not shutil.which("dvc"):
        pytest.fail("dvc is not on PATH: run the tests with `make test`, which installs it in .venv-dvc")
    for name in ("src", "orchestration") if code else ():
        shutil.copytree(PROJECT_ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(PROJECT_ROOT / "profiles", root / "profiles")
    shutil.copy(PROJECT_ROOT / "params.yaml", root / "params.yaml")
    # A second profile to compose with tiny: one key of its own, one that tiny sets too (the later one wins).
    (root / "profiles" / "fewer.yaml").write_text("# fewer questions\nsynthetic:\n  questions_per_video: 4\n")
    (root / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))
    (root / ".gitignore").write_text("\n".join(["/data/", "/mlruns/", "/.cache/", "/.dagster_home/", *ignored]) + "\n")
    _run(["git", "init", "-q"], root)
    _run(["dvc", "init", "-q"], root)
    _run(["git", "add", "-A"], root)
    _run(["git", *GIT_USER, "commit", "-qm", "demo"], root)
    return root


def _exp_ref(root: Path, name: str) -> str:
    refs = _run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], root).stdout.split()
    matching = [ref for ref in refs if ref.rsplit("/", 1)[-1] == name]
    assert len(matching) == 1, refs
    return matching[0]


@pytest.mark.slow
def test_demo_under_two_profiles_records_an_experiment_and_leaves_git_status_clean(tmp_path: Path):
    pipeline = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())
    pipeline["stages"] = {"raw_videos": pipeline["stages"]["raw_videos"]}  # the first stage: a minute, not ten
    root = _repo(tmp_path / "project", pipeline, code=True)
    committed = (root / "params.yaml").read_bytes()
    env_out = _run(_embodied_r("demo", "--profile", "tiny,fewer", "--name", "small", "--target", "raw_videos"), root)
    out = env_out.stdout + env_out.stderr
    assert "tiny: synthetic.seed: 0 -> 7" in out, "what each profile changes is printed"
    assert "fewer: synthetic.questions_per_video: 8 -> 4 (overrides tiny)" in out
    assert "dvc exp apply small" in out

    assert _run(["git", "status", "--porcelain"], root).stdout == "", "params.yaml and dvc.lock as before"
    assert (root / "params.yaml").read_bytes() == committed and not (root / "dvc.lock").exists()
    # The experiment is a git ref holding exactly the params and dvc.lock the run had: reproducible from it.
    ref = _exp_ref(root, "small")
    params = yaml.safe_load(_run(["git", "show", f"{ref}:params.yaml"], root).stdout)
    assert params["profile"] == "tiny+fewer"
    assert (params["synthetic"]["seed"], params["synthetic"]["questions_per_video"]) == (7, 4), "both, later wins"
    lock = yaml.safe_load(_run(["git", "show", f"{ref}:dvc.lock"], root).stdout)
    assert lock["stages"]["raw_videos"]["params"]["params.yaml"]["synthetic"]["seed"] == 7
    shown = json.loads(_run(["dvc", "exp", "show", "--json"], root).stdout)
    names = [exp.get("name") for commit in shown for exp in commit.get("experiments") or []]
    assert "small" in names, shown
    # The outputs stay; dvc status says they are not what the restored (absent) dvc.lock records: it does not lie.
    summary = json.loads((root / "data" / "raw" / "summary.json").read_text())
    assert summary["videos"] == 3 and 0 < summary["questions"] <= 3 * 4, "tiny's 3 videos, fewer's 4 questions each"
    assert "raw_videos" in _run(["dvc", "status", "raw_videos"], root).stdout

    # --keep: the workspace keeps what the experiment records (DVC's run cache: nothing runs again).
    _run(_embodied_r("demo", "--profile", "tiny", "--profile", "fewer", "--keep", "--name", "kept", "--target",
                     "raw_videos"), root)  # fmt: skip
    status = _run(["git", "status", "--porcelain"], root).stdout.splitlines()
    assert sorted(status) == [" M params.yaml", "?? dvc.lock"]
    assert yaml.safe_load((root / "params.yaml").read_text())["profile"] == "tiny+fewer"
    assert "# embodied-r — the single source of configuration" in (root / "params.yaml").read_text(), "comments kept"
    ref = _exp_ref(root, "kept")
    assert (root / "params.yaml").read_text() == _run(["git", "show", f"{ref}:params.yaml"], root).stdout
    assert "up to date" in _run(["dvc", "status", "raw_videos"], root).stdout


def _one_stage(root: Path, cmd: str) -> Path:
    return _repo(root, {"stages": {"step": {"cmd": cmd, "params": ["synthetic.seed"]}}}, ignored=("started",))


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.2)


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_interrupted_demo_restores_params_yaml_and_records_no_experiment(tmp_path: Path, how: str):
    root = _one_stage(tmp_path / "project", "touch started && sleep 120")
    committed = (root / "params.yaml").read_bytes()
    proc = subprocess.Popen(
        _embodied_r("demo", "--profile", "tiny", "--name", "stopped"),
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        # ... with Ctrl-C's default action: a shell starting pytest in the background (`make test &`, some CI
        # runners) makes SIGINT ignored, and an ignored signal stays ignored across exec (Python then installs no
        # handler), which no terminal's foreground job has
        preexec_fn=_sigint_default,
    )
    _wait_for(root / "started", proc)
    assert yaml.safe_load((root / "params.yaml").read_text())["profile"] == "tiny", "the run reads the profile"
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group, DVC included
    else:
        proc.send_signal(signal.SIGTERM)  # a killed make or CI timeout: this process alone
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted: params.yaml and dvc.lock restored" in err
    assert (root / "params.yaml").read_bytes() == committed
    assert _run(["git", "status", "--porcelain"], root).stdout == ""
    assert _run(["git", "for-each-ref", "refs/exps"], root).stdout.count("stopped") == 0
    assert _run(["pgrep", "-f", "sleep 120"], root, check=False).stdout.strip() == "", "no stage left running"


def test_a_failing_stage_restores_params_yaml_and_exits_nonzero(tmp_path: Path):
    root = _one_stage(tmp_path / "project", "exit 3")
    committed = (root / "params.yaml").read_bytes()
    proc = _run(_embodied_r("demo", "--profile", "tiny"), root, check=False)
    assert proc.returncode == 1 and "dvc exp run failed" in proc.stderr and "restored" in proc.stderr
    assert (root / "params.yaml").read_bytes() == committed
    assert _run(["git", "status", "--porcelain"], root).stdout == ""


def test_a_bad_profile_fails_before_dvc_runs_and_names_the_key(tmp_path: Path):
    root = _one_stage(tmp_path / "project", "touch started")
    (root / "profiles" / "broken.yaml").write_text("# broken\ngrpo:\n  learning_rate: -1\n")
    proc = _run(_embodied_r("demo", "--profile", "tiny,broken"), root, check=False)
    assert proc.returncode == 2 and "grpo.learning_rate" in proc.stderr and "Traceback" not in proc.stderr
    assert (
        not (root / "started").exists()
        and _run(["git", "status", "--porcelain"], root).stdout == "?? profiles/broken.yaml\n"
    )


def test_make_demo_runs_a_profile_through_embodied_r_demo_and_without_one_is_dvc_repro():
    def planned(*variables: str) -> list[str]:
        proc = _run(["make", "-n", "demo", *variables], PROJECT_ROOT)  # -n: prints the recipes, runs nothing
        return [line.strip() for line in proc.stdout.splitlines()]

    assert "embodied-r demo --profile tiny,cpu-long" in planned("PROFILE=tiny,cpu-long")
    assert "embodied-r demo --profile cpu-long --keep" in planned("PROFILE=cpu-long", "KEEP=1")
    plain = planned()
    assert "dvc repro" in plain and "embodied-r summary" in plain
    assert not any(line.startswith("embodied-r demo") for line in plain)
