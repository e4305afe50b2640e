"""The ``embodied-r`` command line.

This module holds the library's commands, which need no orchestrator: ``check-params``, ``profile``, ``demo``,
``summary`` and ``registry``. The commands that drive Dagster (``materialize``, ``ui``, ``mlflow-ui``,
``stop``) are added by :mod:`orchestration.cli`, the ``embodied-r`` console script, through
``build_parser(extra_commands=...)``: the library never imports ``dagster`` or ``orchestration``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("embodied_r")

#: Environment that silences third-party progress bars and notices when not verbose (our own bars stay).
QUIET_ENV = {
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # transformers model loading / saving bars
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_LOGGING_LEVEL": "ERROR",  # MLflow sets its own logger level at import
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONWARNINGS": "ignore::FutureWarning,ignore::UserWarning,ignore::DeprecationWarning",
}


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if verbose < 2:
        for noisy in ("alembic", "urllib3", "httpx", "matplotlib"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    if verbose == 0:
        # Quiet by default: model loading bars, MLflow notices, deprecation warnings of the stack. -v brings them back.
        for key, value in QUIET_ENV.items():
            os.environ.setdefault(key, value)
        import warnings

        for category in (FutureWarning, UserWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", category=category)
        for noisy in ("mlflow", "transformers", "datasets", "alembic"):
            logging.getLogger(noisy).setLevel(logging.ERROR)


def cmd_check_params(args: argparse.Namespace) -> int:
    from embodied_r.config import load_params

    params = load_params(args.params)
    print(f"{args.params}: valid (profile {params.profile!r})")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from embodied_r.profiles import available_profiles, check_stacking, compose_profiles, write_composition

    root = Path(args.root).resolve()
    if not args.names:
        for name, description in available_profiles(root).items():
            print(f"{name:10s} {description}")
        return 0
    composition = compose_profiles(root, args.names, args.params)  # validated before the file is touched
    print(composition.describe())
    if args.out:  # a copy for tools that take --params (experiments/); params.yaml untouched
        out = Path(args.out)
        shutil.copyfile(root / args.params, out)
        write_composition(out, composition, root)
        print(f"{out}: {args.params} with profile {composition.name!r} ({args.params} unchanged)")
        return 0
    check_stacking(composition, args.params, force=args.force)
    write_composition(root / args.params, composition, root)
    print(
        f"{args.params}: profile {composition.name!r} written; `dvc repro` reruns what it changed "
        f"(to run under it without writing {args.params}: `embodied-r demo --profile {','.join(composition.names)}`)"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The lineage under profiles as a DVC experiment; params.yaml and dvc.lock as before unless --keep."""
    from embodied_r.config import load_params
    from embodied_r.dvc_experiment import run_profile_experiment
    from embodied_r.layout import Layout
    from embodied_r.profiles import check_stacking, compose_profiles
    from embodied_r.report import render_summary

    root = Path(args.root).resolve()
    composition = compose_profiles(root, args.profile, args.params)
    check_stacking(composition, args.params, force=args.force)
    print(composition.describe(), flush=True)
    try:
        run = run_profile_experiment(
            root, composition, params_file=args.params, name=args.name, targets=args.target, keep=args.keep
        )
    except KeyboardInterrupt:
        kept = "left as the run made them (--keep)" if args.keep else "restored"
        print(f"interrupted: {args.params} and dvc.lock {kept}; no experiment was recorded", file=sys.stderr)
        return 130
    if run.returncode != 0:
        kept = "left with the profile (--keep)" if args.keep else "restored"
        print(
            f"dvc exp run failed (exit {run.returncode}; DVC's message is above); {args.params} and dvc.lock {kept}",
            file=sys.stderr,
        )
        return 1
    if not args.target:
        print(render_summary(Layout(root=root, data_dir=composition.params.data_dir)))
    current = load_params(root / args.params).profile
    if run.kept:
        print(f"{args.params} and dvc.lock keep profile {composition.name!r} (--keep), as the experiment records them")
    else:
        print(
            f"{args.params} and dvc.lock are as before the run (profile {current!r}); the outputs in "
            f"{composition.params.data_dir}/ are the experiment's, so `dvc status` lists their stages as changed"
        )
    print(
        f"experiment {run.name!r} holds the params and dvc.lock it ran with: `dvc exp show`, "
        f"`dvc exp apply {run.name}` (make it the workspace), `dvc exp push <remote> {run.name}` (share it)"
    )
    if run.left_changed:
        print("the run also changed (left as they are): " + ", ".join(run.left_changed), file=sys.stderr)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from embodied_r.config import load_params
    from embodied_r.layout import Layout
    from embodied_r.report import render_summary

    root = Path(args.root).resolve()
    params = load_params(root / args.params)
    print(render_summary(Layout(root=root, data_dir=params.data_dir)))
    return 0


def cmd_registry(args: argparse.Namespace) -> int:
    import mlflow

    from embodied_r.config import load_params
    from embodied_r.evaluation import promotion as reg
    from embodied_r.tracking import configure_tracking

    root = Path(args.root).resolve()
    params = load_params(root / args.params)
    configure_tracking(params.tracking, root)
    client = mlflow.MlflowClient()
    name = params.tracking.registered_model
    if args.action == "promote":
        if not args.version or not (args.reason or "").strip():
            print("promote needs a VERSION and --reason", file=sys.stderr)
            return 2
        version = args.version.removeprefix("v")
        margin = params.evaluation.promotion_margin  # "an improvement" by the automatic rule's margin
        try:
            print(reg.compare_with_champion(client, name, version, margin=margin).render())
            decision = reg.promote(client, name, version, args.reason, force=args.force, margin=margin)
        except (reg.UnknownVersionError, reg.NotAnImprovementError) as exc:
            print(str(exc), file=sys.stderr)
            return 1
        print(decision.reason)
    elif args.action == "rollback":
        try:
            decision = reg.rollback(client, name, args.reason or "rollback")
        except reg.RollbackError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        print(decision.reason)
    versions = sorted(client.search_model_versions(f"name='{name}'"), key=lambda mv: int(mv.version))
    if not versions:
        print(f"{name}: no registered versions yet (the grpo_lm stage registers one)")
        return 0
    champion = reg.current_champion(client, name)
    label = f"v{champion.version}" if champion else "none"
    print(f"{name}: champion {label}; history {reg.champion_history(client, name)}")
    for mv in versions:
        tags = mv.tags
        print(
            f"  {reg.version_score(mv).describe()}; decision {tags.get(reg.DECISION_TAG, '-')} "
            f"({tags.get(reg.REASON_TAG, '')})"
        )
        if tags.get(reg.ROLLED_BACK_TAG):
            print(f"      rolled back: {tags[reg.ROLLED_BACK_TAG]} (never promoted automatically again)")
        if tags.get(reg.LAST_EVALUATION_TAG, "").startswith("kept:"):  # an evaluation that left the decision alone
            print(f"      last evaluation: {tags[reg.LAST_EVALUATION_TAG]}")
    return 0


#: Adds subcommands to the parser's subparsers (``orchestration.cli.add_commands``).
CommandAdder = Callable[[argparse._SubParsersAction], None]


def build_parser(extra_commands: CommandAdder | None = None) -> argparse.ArgumentParser:
    """The parser of the library's commands, and of ``extra_commands``'s (the orchestration's) when given."""
    parser = argparse.ArgumentParser(prog="embodied-r", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug")
    parser.add_argument("--root", default=".", help="project root (holds params.yaml)")
    parser.add_argument("--params", default="params.yaml", help="params file, relative to the root")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-params", help="validate params.yaml")
    p.set_defaults(func=cmd_check_params)

    p = sub.add_parser(
        "profile", help="list the profiles, or write some into params.yaml, composed in order (tiny, cpu-long, paper)"
    )
    p.add_argument("names", nargs="*", help="profiles to compose and write (a later one wins); none = list them")
    p.add_argument("--force", action="store_true", help="write on top of a params.yaml that is not the demo")
    p.add_argument("--out", help="write the composition to this file instead (params.yaml left as it is)")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser(
        "demo",
        help="run the lineage under profiles as a DVC experiment (dvc exp run), params.yaml left as committed",
    )
    p.add_argument("--profile", action="append", required=True, help="profile(s) to compose in order: a,b or repeated")
    p.add_argument("--name", help="the experiment's name (default: the profiles and the time)")
    p.add_argument("--target", action="append", default=[], help="run only up to this DVC stage (repeatable)")
    p.add_argument("--keep", action="store_true", help="leave params.yaml and dvc.lock as the run made them")
    p.add_argument("--force", action="store_true", help="compose on top of a params.yaml that is not the demo")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("summary", help="print what the pipeline has produced so far and where to look")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("registry", help="the model registry: status, or promote / roll back the champion by hand")
    p.add_argument("action", choices=["status", "promote", "rollback"])
    p.add_argument("version", nargs="?", help="version to promote")
    p.add_argument("--reason", help="why (recorded as a tag on the version)")
    p.add_argument(
        "--force", action="store_true", help="promote a version that does not beat the champion (by the margin)"
    )
    p.set_defaults(func=cmd_registry)

    from embodied_r.inference.cli import add_ask_command

    add_ask_command(sub)  # `ask`: a question about a video, answered by the trained model

    if extra_commands is not None:  # the orchestration's (orchestration.cli)
        extra_commands(sub)
    return parser


def main(argv: list[str] | None = None, extra_commands: CommandAdder | None = None) -> int:
    """Run one command; a params or user error is its message on stderr (exit 2 / 1), not a traceback."""
    args = build_parser(extra_commands).parse_args(argv)
    _setup_logging(args.verbose)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    from embodied_r.config import ParamsError
    from embodied_r.errors import UserError

    try:
        return args.func(args)
    except ParamsError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except UserError as exc:  # bad input or state the message explains: no traceback
        print(str(exc), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
