"""What each DVC stage really runs and reads, traced, against what ``dvc.yaml`` lists for it.

:func:`trace_stages` runs every stage's ``cmd`` (``embodied-r materialize ...``) in-process, in ``dvc.yaml``'s
order, on a project (the tiny profile in the tests) and records per stage, the tracer reset in between:

- code: the project files (under ``src/embodied_r`` and ``orchestration``) with a function called while the
  stage's Dagster run executed (the asset, its resources and checks, the library), and in the Python processes it
  starts (a
  ``sitecustomize`` on their ``PYTHONPATH`` traces them: the synthetic videos render in a spawned pool). Code run
  while a module is being imported does not count: in one process a module is imported once, by whichever stage
  comes first, and the code location imports every asset module for every stage; a module matters to a stage
  when the stage calls into it. A module of definitions only (no function: a pydantic schema such as
  ``training/rows.py``, constants) never shows a call; it counts when a file the stage ran imports it — its
  classes and values are used by that code (:func:`definition_modules`; package ``__init__`` files that re-export
  are namespaces, not code). The command around the run (``embodied-r``'s argument parsing, building the
  definitions, choosing the executor and the partitions) is the same harness for every stage and decides how a
  stage runs, not what it makes, like DVC's and Dagster's own code: it is not a dep.
- params: the keys read from the validated params (:func:`embodied_r.config.access.recording_view` over every
  :func:`embodied_r.config.load_params`), but for :data:`PROVENANCE_READERS` (a hash or log of every key is a
  record of the run, not an input of it) and :data:`NOT_RESULTS` (sections that choose how a run executes,
  never what it makes).

:func:`stage_problems` compares one stage's trace with its ``dvc.yaml`` entry: a code dep (a file, or a folder
covering its files) or params entry (a section covering its keys, or a dotted key) that the stage needs and the
entry misses, or one it lists and never touches, each named with the fix.
"""

from __future__ import annotations

import ast
import os
import shlex
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The folders whose files are project code (relative to the project root).
CODE_FOLDERS = ("src/embodied_r", "orchestration")

#: Functions whose reads of params are provenance, not inputs: (file, function) -> why.
PROVENANCE_READERS = {
    ("src/embodied_r/evaluation/report.py", "params_hash"): "results.json's hash of every key records the run",
    ("src/embodied_r/inference/card.py", "deviations"): "the model card lists every key that differs from the paper",
}

#: Project files that are not a stage's code: the tracer's instrument (the recording view), and the harness around
#: every stage's run (``embodied-r materialize``'s runner: it hands the run to Dagster, whatever the stage).
INSTRUMENT_FILES = {"src/embodied_r/config/access.py", "orchestration/cli.py"}

#: Params sections that choose how a run executes, never what it produces (no stage reruns for them; params.yaml
#: says "no effect on results" of each).
NOT_RESULTS = {
    "orchestration": "the Dagster executor",
    "runtime": "each stage process's allocator and threads",
    "storage": "the DVC remote",
}

#: Keys whose default is another key's value (:meth:`embodied_r.config.params.Params._values_written_once`): when
#: params.yaml does not set the key, the stage reads the other key's value, so DVC must watch that one.
DERIVED_DEFAULTS = {
    "training_set.categories": "data.categories",
    "synthetic.categories": "data.categories",
    "validation.min_keyframes": "keyframes.min_frames",
    "validation.max_keyframes": "keyframes.max_frames",
}

#: Code a stage runs under other params than the tiny profile's, so the tracer cannot see it: stage -> path -> why.
#: dvc.yaml must list these too (folders listed for a stage cover the rest: every perception backend, ...).
_OPENAI = "src/embodied_r/openai_client.py"
OTHER_PARAMS_CODE: dict[str, dict[str, str]] = {
    "vlm_descriptions": {_OPENAI: "perception.backend: openai (the VLM server's key policy)"},
    "grpo_lm": {
        _OPENAI: "rewards.judge.backend: openai (the judge's key policy)",
        "src/embodied_r/training/launch.py": "grpo.launcher other than inprocess (the launched training processes)",
    },
    "evaluation_results": {_OPENAI: "rewards.judge.backend: openai (the consistency judge of the noise study)"},
    "predictions": {_OPENAI: "perception.backend: openai (the VLM server's key policy)"},
}

#: Keys a stage reads only on a path the tiny run does not take: stage -> key -> when.
OTHER_PATH_READS: dict[str, dict[str, str]] = {
    "vlm_descriptions": {"keyframes.max_failed_share": "when a video's key frames failed (its questions are left out)"},
}

#: Keys read whenever another is, on a path that depends on what ran before: key -> (also read, when).
READ_WITH = {
    "tracking.experiment": ("tracking.artifact_root", "the first stage to log creates the experiment with it"),
}


@dataclass
class StageTrace:
    """What one stage's command ran (project files, relative paths) and read (dotted params keys)."""

    files: set[str] = field(default_factory=set)
    params: set[str] = field(default_factory=set)
    called: dict[str, set[int]] = field(default_factory=dict)  # file -> first lines of its functions that ran


class _Tracer:
    """``sys.settrace`` / ``threading.settrace`` on call events: the project files whose functions run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.prefixes = tuple(f"{root / folder}/" for folder in CODE_FOLDERS)
        self.current: StageTrace | None = None  # recording (inside the stage's Dagster run)
        self.pending: StageTrace | None = None  # the stage whose command runs
        self._rel: dict[str, str | None] = {}  # co_filename -> project-relative path (None: not project code)
        self._counted: set = set()  # code objects counted for the current stage
        self._provenance = {(f"{root}/{path}", name) for path, name in PROVENANCE_READERS}
        self.child_file: Path | None = None  # where traced child processes write their files

    def _relative(self, filename: str) -> str | None:
        if filename not in self._rel:
            self._rel[filename] = (
                Path(filename).relative_to(self.root).as_posix() if filename.startswith(self.prefixes) else None
            )
        return self._rel[filename]

    def __call__(self, frame, event: str, arg: Any):
        if event != "call" or self.current is None:
            return None
        code = frame.f_code
        if code in self._counted:
            return None
        rel = self._relative(code.co_filename)
        if rel is None or rel in INSTRUMENT_FILES or code.co_name == "<module>" or _importing(frame):
            return None
        self._counted.add(code)
        self.current.files.add(rel)
        self.current.called.setdefault(rel, set()).add(code.co_firstlineno)
        return None

    def on_read(self, key: str) -> None:
        if self.current is None or key.split(".")[0] in NOT_RESULTS:
            return
        frame = sys._getframe(1)
        while frame is not None:
            if (frame.f_code.co_filename, frame.f_code.co_name) in self._provenance:
                return
            frame = frame.f_back
        self.current.params.add(key)

    @contextmanager
    def stage(self, trace: StageTrace) -> Iterator[StageTrace]:
        self.pending, self._counted = trace, set()
        if self.child_file is not None:
            self.child_file.write_text("")
        try:
            yield trace
        finally:
            self.pending = self.current = None
            if self.child_file is not None:
                for name in set(self.child_file.read_text().split()):
                    trace.files.add(Path(name).relative_to(self.root).as_posix())
                trace.files -= INSTRUMENT_FILES


def _importing(frame) -> bool:
    """Whether ``frame`` runs inside an import (a module body or importlib's machinery is on the stack)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


#: Imported first by every Python process the stages start (on their PYTHONPATH): the same tracer, writing each
#: project file with a function called to $DVC_TRACE_FILE as it happens (a pool worker may be terminated).
_CHILD_TRACER = """\
import os, sys, threading

def _install():
    out = os.environ.get("DVC_TRACE_FILE")
    if not out:
        return
    prefixes = tuple(os.environ["DVC_TRACE_PREFIXES"].split(os.pathsep))
    seen = set()

    def importing(frame):
        while frame is not None:
            if frame.f_code.co_filename.startswith("<frozen importlib"):
                return True
            frame = frame.f_back
        return False

    def trace(frame, event, arg):
        code = frame.f_code
        name = code.co_filename
        if event == "call" and name not in seen and name.startswith(prefixes) and code.co_name != "<module>":
            if not importing(frame):
                seen.add(name)
                with open(out, "a") as fh:
                    fh.write(name + "\\n")
        return None

    sys.settrace(trace)
    threading.settrace(trace)

_install()
"""


@contextmanager
def _tracing(root: Path) -> Iterator[_Tracer]:
    """The tracer installed on this thread, on threads started meanwhile, in Python processes started meanwhile
    and on every params load."""
    from embodied_r.config import access
    from embodied_r.config import params as params_module

    tracer = _Tracer(root)
    parse = params_module.parse_params

    def recorded_parse(*args: Any, **kwargs: Any):
        return access.recording_view(parse(*args, **kwargs), tracer.on_read)

    saved_env = {k: os.environ.get(k) for k in ("PYTHONPATH", "DVC_TRACE_FILE", "DVC_TRACE_PREFIXES")}
    with tempfile.TemporaryDirectory(prefix="dvc-trace-") as tmp:
        (Path(tmp) / "sitecustomize.py").write_text(_CHILD_TRACER)
        tracer.child_file = Path(tmp) / "children.txt"
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [tmp, os.environ.get("PYTHONPATH")]))
        os.environ["DVC_TRACE_FILE"] = str(tracer.child_file)
        os.environ["DVC_TRACE_PREFIXES"] = os.pathsep.join(tracer.prefixes)
        params_module.parse_params = recorded_parse  # load_params looks it up at call time
        previous = sys.gettrace()
        sys.settrace(tracer)
        threading.settrace(tracer)
        try:
            yield tracer
        finally:
            sys.settrace(previous)
            threading.settrace(None)
            params_module.parse_params = parse
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _module_file(root: Path, module: str) -> str | None:
    """The project file of a dotted module name (``embodied_r.x.y`` under src/), or None."""
    parts = module.split(".")
    if parts[0] not in ("embodied_r", "orchestration"):
        return None
    base = root.joinpath("src" if parts[0] == "embodied_r" else ".", *parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate.resolve().relative_to(root.resolve()).as_posix()
    return None


def _imported_files(root: Path, rel: str, called: set[int]) -> set[str]:
    """The project files ``rel`` imports at module level or in a function that ran (its first line in ``called``;
    a lazy import in a function that never ran is not used)."""
    found = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
            if first not in called:
                return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            found.update(f for f in (_module_file(root, name) for name in names) if f)
        elif isinstance(node, ast.Import):
            found.update(f for f in (_module_file(root, alias.name) for alias in node.names) if f)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse((root / rel).read_text(encoding="utf-8")))
    return found


def _defines_no_function(root: Path, rel: str) -> bool:
    tree = ast.parse((root / rel).read_text(encoding="utf-8"))
    return not any(isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) for node in ast.walk(tree))


def definition_modules(root: Path, files: set[str], called: dict[str, set[int]] | None = None) -> set[str]:
    """The modules of definitions only (no function; not a package ``__init__``) that ``files`` import (at module
    level, or in the functions ``called``: file -> first lines of the functions that ran), and those they import."""
    found: set[str] = set()
    todo = set(files)
    while todo:
        importer = todo.pop()
        for rel in _imported_files(root, importer, (called or {}).get(importer, set())):
            if rel in files or rel in found or rel.endswith("__init__.py") or rel in INSTRUMENT_FILES:
                continue
            if _defines_no_function(root, rel):
                found.add(rel)
                todo.add(rel)
    return found


def stage_argv(spec: dict) -> list[str]:
    """The CLI arguments of a stage's ``cmd`` (``embodied-r materialize X`` -> ``["materialize", "X"]``)."""
    argv = shlex.split(spec["cmd"])
    assert argv[0] == "embodied-r", f"stage cmd {spec['cmd']!r} is not an embodied-r command: trace it by hand"
    return argv[1:]


def trace_stages(
    project: Path, stages: dict[str, dict], code_root: Path, before: dict[str, Callable[[Path], None]] | None = None
) -> dict[str, StageTrace]:
    """Run each stage's command on ``project`` in order, traced; the code imported from ``code_root``;
    ``before[stage](project)`` first, untraced (an input the stage needs that no stage makes)."""
    from orchestration import cli

    traces: dict[str, StageTrace] = {}
    execute = cli._execute

    def traced_execute(*args: Any, **kwargs: Any):  # the stage's Dagster run: what is recorded
        tracer.current = tracer.pending
        try:
            return execute(*args, **kwargs)
        finally:
            tracer.current = None

    with _tracing(code_root) as tracer:
        cli._execute = traced_execute  # cmd_materialize looks it up at call time
        try:
            for name, spec in stages.items():
                if name in (before or {}):
                    before[name](project)
                with tracer.stage(StageTrace()) as trace:
                    code = cli.main(["--root", str(project), *stage_argv(spec)])
                assert code == 0, f"stage {name} failed (exit {code}): see the captured output"
                trace.files |= definition_modules(code_root, trace.files, trace.called)
                traces[name] = trace
        finally:
            cli._execute = execute
    return traces


def _code_deps(spec: dict) -> list[str]:
    deps = [d for d in spec.get("deps") or [] if isinstance(d, str) and "${" not in d]
    return [d.rstrip("/") for d in deps if any(_under(d.rstrip("/"), f, "/") for f in CODE_FOLDERS)]


def _under(path: str, entry: str, sep: str) -> bool:
    return path == entry or path.startswith(entry + sep)


def _has_key(data: Any, dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def dvc_param_keys(reads: set[str], params_file: dict) -> set[str]:
    """The params.yaml keys DVC must watch for ``reads``: a key the file does not set is watched through the key
    its default comes from (:data:`DERIVED_DEFAULTS`), or else through its nearest section the file has (DVC
    refuses to watch a key missing from the file, and the section changes when someone sets the key)."""
    keys = set()
    for key in reads:
        if not _has_key(params_file, key) and key in DERIVED_DEFAULTS:
            key = DERIVED_DEFAULTS[key]
        parts = key.split(".")
        while parts and not _has_key(params_file, ".".join(parts)):
            parts.pop()
        if parts:  # a whole section params.yaml lacks: only its code defaults apply (the code deps cover them)
            keys.add(".".join(parts))
    return keys


def stage_problems(stage: str, spec: dict, trace: StageTrace, params_file: dict) -> list[str]:
    """What ``stage``'s ``dvc.yaml`` entry misses or has too many, each a line naming the entry and the fix."""
    problems = []
    deps = _code_deps(spec)
    runs = trace.files | set(OTHER_PARAMS_CODE.get(stage, {}))
    missing = sorted(f for f in runs if not any(_under(f, d, "/") for d in deps))
    if missing:
        problems.append(f"deps misses code the stage runs — add: {', '.join(missing)}")
    unused = [d for d in deps if not any(_under(f, d, "/") for f in runs)]
    if unused:
        problems.append(f"deps lists code the stage never runs — remove: {', '.join(unused)}")

    listed = [p for p in spec.get("params") or [] if isinstance(p, str)]
    reads = trace.params | set(OTHER_PATH_READS.get(stage, {}))
    reads |= {READ_WITH[k][0] for k in reads if k in READ_WITH}
    needed = dvc_param_keys(reads, params_file)
    missing = sorted(k for k in needed if not any(_under(k, e, ".") for e in listed))
    if missing:
        problems.append(f"params misses keys the stage reads — add: {', '.join(missing)}")
    unused = [e for e in listed if not any(_under(k, e, ".") or _under(e, k, ".") for k in needed)]
    if unused:
        problems.append(f"params lists keys the stage never reads — remove: {', '.join(unused)}")
    return [f"dvc.yaml stage {stage!r}: {p}" for p in problems]
