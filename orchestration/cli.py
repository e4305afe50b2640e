"""The ``embodied-r`` console script: the library's commands plus those that drive Dagster.

``embodied-r materialize ASSET`` runs a Dagster materialization on the project's persistent instance
(``.dagster_home/``), in-process unless ``orchestration.executor`` in params.yaml names another executor; each
DVC stage is one such call. ``ui`` / ``mlflow-ui`` start the UIs in the foreground and ``stop`` stops them. The
library's commands (``check-params``, ``profile``, ``summary``, ``registry``) are :mod:`embodied_r.cli`'s; this
module adds these to its parser, so the library itself never imports Dagster.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from embodied_r import cli as library_cli

log = logging.getLogger("embodied_r")

#: The run tag that names a run's partition (what ``dg.materialize(partition_key=...)`` sets).
PARTITION_TAG = "dagster/partition"
#: The run tag naming the profiles composed on top of the params file (``--profile``), as the ``profile`` key does.
PROFILE_TAG = "embodied_r/profile"

_DAGSTER_YAML = """\
# Dagster instance of this checkout (created by embodied-r; git-ignored).
telemetry:
  enabled: false
"""


def ensure_dagster_home(root: Path) -> Path:
    """Use ``$DAGSTER_HOME`` or ``<root>/.dagster_home``, creating it (and dagster.yaml) when missing."""
    home = Path(os.environ.get("DAGSTER_HOME") or root / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(_DAGSTER_YAML, encoding="utf-8")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def cmd_materialize(args: argparse.Namespace) -> int:
    """Materialize ``args.assets`` (per video with a partition option), print what was made and the checks."""
    root = Path(args.root).resolve()
    ensure_dagster_home(root)

    import dagster as dg

    from embodied_r.profiles import profile_names
    from orchestration.definitions import build_definitions, executor_for
    from orchestration.resources import ProjectResource

    # The assets read the params file given here, with the profiles on top (nothing written): the resource's
    # explicit config, passed to every run.
    profiles = ",".join(profile_names(args.profile))
    project = ProjectResource(root=str(root), params_file=args.params, profiles=profiles)
    params = project.load_params()  # fail fast, before Dagster starts, on a bad params file or profile
    executor_for(params.orchestration)  # and on an executor that cannot be imported
    # Before any step allocates (and before torch loads): the allocator and threads of params' runtime section.
    from embodied_r.runtime import tune_process

    tune_process(params.runtime)
    if profiles:
        print(f"params: {args.params} with profile(s) {profiles} on top, not written (profile {params.profile!r})")
    defs = build_definitions(project)
    try:
        graph, keys, per_video_keys = _resolve(defs, args.assets)
    except dg.DagsterError as exc:  # a misspelt asset or a bad selection string
        print(f"cannot select {' '.join(args.assets)!r}: {exc}", file=sys.stderr)
        return 2
    if per_video_keys and not (args.all_partitions or args.partition):
        # Dagster alone would fail the step with "Cannot access partition_key for a non-partitioned run"
        print(
            f"{', '.join(sorted(k.to_user_string() for k in per_video_keys))} is materialized per video: add "
            "--all-partitions (every video, in one run) or --partition VIDEO_ID (one video)",
            file=sys.stderr,
        )
        return 2
    instance = dg.DagsterInstance.get()
    tags = dict(t.split("=", 1) for t in args.tag)
    if profiles:  # which params the run read, in its tags (the UI's runs list and filter)
        tags.setdefault(PROFILE_TAG, params.profile)
    # Quiet by default: Dagster's console logger would print every step failure with its whole stack trace; the
    # run's warnings are replayed after it (_print_run_warnings) and a failure is one paragraph (_report_failure).
    level = "CRITICAL" if args.verbose == 0 else "INFO" if args.verbose == 1 else "DEBUG"
    results = []
    per_video = bool(args.all_partitions or args.partition)
    for selection, partitioned in _runs(graph, args.assets, keys, per_video_keys, per_video=per_video):
        partition_tags: dict[str, str] = {}
        partition_key = None
        from orchestration.assets import predictions as inbox

        # The inbox's videos (``predictions``) are those of the inbox folder, not of the dataset.
        of_inbox = partitioned and {graph.get(k).partitions_def for k in selection} == {inbox.inbox_partitions}
        if of_inbox and args.all_partitions:
            if not inbox.inbox_video_ids(project):  # nothing to answer is no failure: the DVC stage's empty output
                inbox.ensure_empty_output(project)
                print("the inbox holds no video with a question: nothing to predict")
                continue
            partition_tags = inbox.inbox_run_tags(instance, project)
        elif of_inbox:
            partition_key = inbox.inbox_run_key(instance, project, args.partition)
        # After raw_videos, when the same command runs it first: the videos are those of its videos.json.
        elif partitioned and args.all_partitions:
            from orchestration.partitions import all_videos_run_tags

            partition_tags = all_videos_run_tags(instance, project)
        elif partitioned:
            from orchestration.partitions import video_run_key

            partition_key = video_run_key(instance, project, args.partition)
        result = _execute(
            defs,
            params.orchestration,
            selection,
            instance=instance,
            partition_key=partition_key,
            tags=tags | partition_tags,
            run_config={"loggers": {"console": {"config": {"log_level": level}}}},
        )
        results.append(result)
        if args.verbose == 0:
            _print_run_warnings(instance, result.run_id)
        if not result.success:
            break  # the rest depends on it
    for result in results:
        for event in result.get_asset_materialization_events():
            partition = f" [{event.partition}]" if event.partition else ""
            print(f"materialized {event.asset_key.to_user_string()}{partition}")
    failed_checks = []
    for check in (c for result in results for c in result.get_asset_check_evaluations()):
        status = "passed" if check.passed else "FAILED"
        print(f"check {check.asset_key.to_user_string()}:{check.check_name} {status}")
        if not check.passed:
            failed_checks.append(check)
            print(check.metadata["result"].value if "result" in check.metadata else "", file=sys.stderr)
    if failed_checks:
        # Blocking checks: the next stage must not start (DVC runs it in a separate process).
        print(f"{len(failed_checks)} blocking data check(s) failed; fix the data or the thresholds", file=sys.stderr)
        return 1
    failed = next((result for result in results if not result.success), None)
    if failed is not None:
        _report_failure(failed, instance, root)
        return 1
    return 0


def _execute(defs, settings, selection: list, *, instance, partition_key: str | None, tags: dict, run_config: dict):
    """One run of ``selection`` with the executor of ``orchestration.executor`` (``settings``).

    In-process (the default) runs the steps here, one after another. Any other executor runs the job by
    reference: :func:`orchestration.definitions.materialization_job`, rebuilt from the same root, params file
    and selection in each step's process (Dagster's reconstructable job), on this persistent instance.
    """
    import dagster as dg

    if settings.executor == "in_process":
        return dg.materialize(
            assets=[*defs.assets, *(defs.asset_checks or [])],
            selection=selection,
            instance=instance,
            resources=defs.resources,
            partition_key=partition_key,
            tags=tags,
            run_config=run_config,
            raise_on_error=False,
        )
    project = defs.resources["project"]
    names = [item.to_user_string() if isinstance(item, dg.AssetKey) else item for item in selection]
    job = dg.build_reconstructable_job(
        "orchestration.definitions",
        "materialization_job",
        reconstructable_kwargs={
            "root": project.root,
            "params_file": project.params_file,
            "selection": names,
            "profiles": project.profiles,
        },
    )
    if partition_key is not None:
        tags = {**tags, PARTITION_TAG: partition_key}
    return dg.execute_job(job, instance, run_config=run_config, tags=tags, raise_on_error=False)


def _print_run_warnings(instance, run_id: str) -> None:
    """The warnings and errors the assets logged in run ``run_id`` (``context.log``), one line each."""
    for entry in instance.all_logs(run_id):
        # "Dependencies for step X failed ... Not executing": the failure paragraph already says what failed.
        if not entry.is_dagster_event and entry.level >= logging.WARNING and "Not executing" not in entry.user_message:
            print(f"{entry.step_key or 'run'}: {entry.user_message}", file=sys.stderr)


#: OS errors that are about the user's files and folders (read-only, missing, full), not bugs.
_PATH_ERRORS = {"PermissionError", "FileNotFoundError", "NotADirectoryError", "IsADirectoryError", "FileExistsError"}
_PATH_ERRNOS = ("[Errno 28]", "[Errno 30]", "[Errno 13]")  # no space left, read-only file system, permission denied


def _causes(error) -> list:
    """``error`` (a Dagster ``SerializableErrorInfo``) and everything in its cause and context chains, outermost
    first."""
    chain, todo = [], [error]
    while todo:
        current = todo.pop(0)
        if current is not None and current not in chain:
            chain.append(current)
            todo += [current.cause, current.context]
    return chain


def _bare_message(error) -> str:
    """An error's message without the ``module.Class: `` prefix Dagster puts in front of it."""
    message = error.message.strip()
    prefix = f"{error.cls_name}: "
    return message.split(prefix, 1)[1].strip() if prefix in message.split("\n", 1)[0] else message


def step_error_paragraph(step: str, error, description: str | None = None) -> str:
    """What a failed step tells the user: a user error's own message, or a one-line summary of an unexpected one.

    ``error`` is the step's ``SerializableErrorInfo``; the user error is the first
    :class:`~embodied_r.errors.UserError` (or OS error on a path: read-only folder, missing file, disk full) in its
    cause chain. ``description`` is a ``dagster.Failure``'s, which the assets raise with the fix in it.
    """
    from embodied_r.errors import user_error_names

    names = user_error_names()
    for cause in _causes(error):
        if cause.cls_name in names:
            return f"{step} failed: {_bare_message(cause)}"
        if cause.cls_name in _PATH_ERRORS or any(code in cause.message for code in _PATH_ERRNOS):
            fix = "check that the path exists and that its folder is writable (or set the option naming it elsewhere)"
            return f"{step} failed: {_bare_message(cause)}; {fix}"
    if description:
        return f"{step} failed: {description}"
    innermost = _causes(error)[-1] if error is not None else None
    if innermost is None:
        return f"{step} failed (no error recorded)"
    frames = [line.strip().split("\n")[0] for line in innermost.stack if line.strip().startswith("File ")]
    ours = [f for f in frames if "site-packages" not in f] or frames  # the project's line, not the library's
    where = f", {ours[-1]}" if ours else ""
    first_line = _bare_message(innermost).splitlines()[0] if innermost.message.strip() else ""
    summary = f"{innermost.cls_name}: {first_line}{where}"
    return f"{step} failed with an unexpected error (a bug, please report it): {summary}"


def write_run_log(instance, run_id: str, home: Path) -> Path:
    """Every event of run ``run_id``, with full stack traces, in ``<DAGSTER_HOME>/logs/<run_id>.log``."""
    import datetime as dt

    path = home / "logs" / f"{run_id}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for entry in instance.all_logs(run_id):
            stamp = dt.datetime.fromtimestamp(entry.timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
            level = logging.getLevelName(entry.level)
            event = entry.dagster_event.event_type_value if entry.is_dagster_event else "LOG"
            out.write(f"{stamp} {level} {entry.step_key or '-'} {event}: {entry.user_message}\n")
            failed_step = entry.is_dagster_event and entry.dagster_event.is_step_failure
            data = entry.dagster_event.step_failure_data if failed_step else None
            error = (data.error if data is not None else None) or entry.error_info
            if error is not None:
                out.write(error.to_string() + "\n")
    return path


def _report_failure(result, instance, root: Path) -> None:
    """One paragraph per failed step of ``result`` (what, which item, the fix) and where the full log is."""
    home = Path(os.environ["DAGSTER_HOME"])
    log_path = write_run_log(instance, result.run_id, home)
    shown = log_path.relative_to(Path.cwd()) if log_path.is_relative_to(Path.cwd()) else log_path
    paragraphs = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            data = event.step_failure_data
            description = data.user_failure_data.description if data.user_failure_data else None
            paragraphs.append(step_error_paragraph(event.step_key or "run", data.error, description))
    if not paragraphs:  # the run failed outside its steps
        failure = next((e for e in result.all_events if e.event_type_value == "RUN_FAILURE"), None)
        paragraphs.append(f"run failed: {failure.message if failure else 'no reason recorded'}")
    for paragraph in paragraphs:
        print(paragraph, file=sys.stderr)
    print(f"Full log: {shown} (or `make ui` and open run {result.run_id}).", file=sys.stderr)


def _resolve(defs, assets: list[str]) -> tuple[Any, set, set]:
    """``assets`` (a Dagster selection) resolved: ``(asset graph, their keys, the per-video keys among them)``."""
    import dagster as dg

    graph = defs.resolve_asset_graph()
    keys = dg.AssetSelection.from_coercible(assets).resolve(graph)
    return graph, keys, {k for k in keys if graph.get(k).partitions_def is not None}


def _runs(graph, assets: list[str], keys: set, per_video_keys: set, *, per_video: bool) -> list[tuple[Any, bool]]:
    """The runs that materialize ``assets`` (resolved by :func:`_resolve` to ``keys``, ``per_video_keys`` among
    them), as ``(selection, partitioned)``: one run, or with a partition option up to three — the unpartitioned
    assets the per-video ones depend on, the per-video assets for those partitions, then the rest (one partitioned
    run would silently skip the unpartitioned assets).
    """
    if not per_video:
        return [(assets, False)]
    import dagster as dg

    upstream = dg.AssetSelection.assets(*per_video_keys).upstream().resolve(graph) if per_video_keys else set()
    before = {k for k in keys - per_video_keys if k in upstream}
    after = keys - per_video_keys - before
    runs = [(sorted(before), False), (sorted(per_video_keys), True), (sorted(after), False)]
    return [(selection, partitioned) for selection, partitioned in runs if selection]


def _announce(ui: str, args: argparse.Namespace):
    """What ``ui`` / ``mlflow-ui`` print once the UI may start (not before a refusal)."""
    return lambda: print(f"{ui} UI on http://{args.host}:{args.port} (Ctrl-C or `make stop` to stop)", flush=True)


def dagster_ui_argv(host: str, port: int) -> list[str]:
    """``dagster dev`` on this code location (``orchestration.definitions``), on ``host:port``."""
    return [sys.executable, "-m", "dagster", "dev", "-m", "orchestration.definitions", "-h", host, "-p", str(port)]


def cmd_ui(args: argparse.Namespace) -> int:
    from embodied_r.config import load_params
    from embodied_r.profiles import compose_profiles, profile_names
    from embodied_r.services import run_service

    root = Path(args.root).resolve()
    names = profile_names(args.profile)
    # The UI's runs read this file, with the profiles on top: a bad one fails here, not in every run.
    compose_profiles(root, names, args.params) if names else load_params(root / args.params)
    home = ensure_dagster_home(root)
    from orchestration.definitions import UI_PARAMS_ENV, UI_PROFILES_ENV, UI_ROOT_ENV

    # The code location `dagster dev` loads reads these (orchestration.definitions).
    env = {**os.environ, UI_ROOT_ENV: str(root), UI_PARAMS_ENV: args.params, UI_PROFILES_ENV: ",".join(names)}
    argv = dagster_ui_argv(args.host, args.port)
    return run_service(
        "dagster-ui", argv, home, env, host=args.host, port=args.port, on_start=_announce("Dagster", args)
    )


def cmd_mlflow_ui(args: argparse.Namespace) -> int:
    from embodied_r.config import load_params
    from embodied_r.services import mlflow_ui_argv, run_service
    from embodied_r.tracking import resolve_tracking_uri

    root = Path(args.root).resolve()
    home = ensure_dagster_home(root)
    tracking = load_params(root / args.params).tracking
    uri = resolve_tracking_uri(tracking.tracking_uri, root)
    artifacts = (root / tracking.artifact_root).resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    argv = mlflow_ui_argv(uri, artifacts, args.host, args.port)
    return run_service("mlflow-ui", argv, home, host=args.host, port=args.port, on_start=_announce("MLflow", args))


def cmd_stop(args: argparse.Namespace) -> int:
    from embodied_r.services import stop_services

    stopped, stale = stop_services(ensure_dagster_home(Path(args.root).resolve()))
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    if stale:
        print("removed the pid files of UIs no longer running: " + ", ".join(stale))
    return 0


#: The DVC extra (``pip install "dvc[<extra>]"``) each remote URL scheme needs; a folder needs none.
DVC_EXTRAS = {"s3": "s3", "gs": "gs", "gcs": "gs", "azure": "azure", "ssh": "ssh", "hdfs": "hdfs", "webdav": "webdav"}


def dvc_remote_argvs(storage) -> list[list[str]]:
    """The ``dvc remote`` commands that make ``.dvc/config``'s default remote the ``storage`` section of params.

    ``add --force`` replaces the remote whole (its earlier options go), so the section is the whole truth.
    """
    argvs = [["remote", "add", "--default", "--force", storage.remote, storage.url]]
    for key, value in sorted(storage.options.items()):
        text = str(value).lower() if isinstance(value, bool) else str(value)
        argvs.append(["remote", "modify", storage.remote, key, text])
    return argvs


def cmd_remote(args: argparse.Namespace) -> int:
    """Apply params.yaml's ``storage`` section to ``.dvc/config`` (what ``make setup`` runs)."""
    import subprocess

    from embodied_r.config import load_params
    from embodied_r.dvc_experiment import DvcNotFoundError, find_dvc

    root = Path(args.root).resolve()
    storage = load_params(root / args.params).storage
    try:
        dvc = find_dvc(root)
    except DvcNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 1
    if not (root / ".dvc").is_dir():
        print(f"{root} is not a DVC repository: run `dvc init` there (or `make setup`)", file=sys.stderr)
        return 1
    for argv in dvc_remote_argvs(storage):
        proc = subprocess.run([dvc, *argv], cwd=root, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"`dvc {' '.join(argv)}` failed: {proc.stderr.strip() or proc.stdout.strip()}", file=sys.stderr)
            return 1
    scheme = storage.url.split("://", 1)[0] if "://" in storage.url else ""
    print(f"DVC remote {storage.remote!r} (default): {storage.url}")
    if scheme in DVC_EXTRAS:
        print(f'`dvc push` / `dvc pull` to {scheme}:// need `pip install "dvc[{DVC_EXTRAS[scheme]}]"` in .venv-dvc; '
              f"credentials: `dvc remote modify --local {storage.remote} <key> <value>`")  # fmt: skip
    return 0


_PROFILE_HELP = "profile(s) composed in order on top of the params file for the runs (a,b or repeated); not written"


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add the Dagster-driving commands to the library parser's subcommands."""
    p = sub.add_parser(
        "materialize",
        help="materialize assets on the project's Dagster instance (in-process unless orchestration.executor "
        "names another executor)",
    )
    p.add_argument("assets", nargs="+", help="asset keys (or a Dagster selection) to materialize")
    p.add_argument("--partition", default=None, help="one video: its id, or its key <data_dir>::<video_id>")
    p.add_argument(
        "--all-partitions",
        action="store_true",
        help="every video of <data_dir>/raw/videos.json (predictions: of the inbox), in one run",
    )
    p.add_argument("--tag", action="append", default=[], help="run tag KEY=VALUE (repeatable)")
    p.add_argument("--profile", action="append", default=[], help=_PROFILE_HELP)
    p.set_defaults(func=cmd_materialize)

    p = sub.add_parser("ui", help="start the Dagster UI (foreground)")
    p.add_argument("--profile", action="append", default=[], help=_PROFILE_HELP)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser("mlflow-ui", help="start the MLflow UI (foreground)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.set_defaults(func=cmd_mlflow_ui)

    p = sub.add_parser("stop", help="stop the UIs started by `ui` and `mlflow-ui`")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("remote", help="make params.yaml's storage section the default DVC remote (.dvc/config)")
    p.set_defaults(func=cmd_remote)


def build_parser() -> argparse.ArgumentParser:
    """The whole ``embodied-r`` parser: the library's commands and :func:`add_commands`'s."""
    return library_cli.build_parser(add_commands)


def main(argv: list[str] | None = None) -> int:
    """The ``embodied-r`` console script."""
    return library_cli.main(argv, add_commands)


if __name__ == "__main__":
    sys.exit(main())
