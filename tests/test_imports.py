"""The library's import boundaries: ``embodied_r`` is usable without the orchestrator, and its config without torch."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import PROJECT_ROOT

LIBRARY = PROJECT_ROOT / "src" / "embodied_r"
#: What the library must never import: Dagster drives the library (orchestration/), never the other way round.
FORBIDDEN = ("dagster", "dagster_webserver", "orchestration")


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module an ``import`` / ``from ... import`` names (at any depth, lazy imports included), with its line."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.append((node.lineno, str(node.args[0].value)))
    return found


def library_imports_of(names: tuple[str, ...]) -> list[str]:
    """``file:line module`` for each import in ``src/embodied_r`` of a top-level package in ``names``."""
    bad = []
    for path in sorted(LIBRARY.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, module in _imported_modules(tree):
            if module.split(".")[0] in names:
                bad.append(f"{path.relative_to(PROJECT_ROOT)}:{line} {module}")
    return bad


def test_the_library_imports_neither_dagster_nor_the_orchestration():
    """Before: embodied_r/cli.py imported dagster and orchestration.definitions for materialize, ui and stop."""
    assert library_imports_of(FORBIDDEN) == []


def test_the_scan_sees_lazy_imports():
    source = "def f():\n    import dagster as dg\n    from orchestration.partitions import x\n"
    assert [m for _, m in _imported_modules(ast.parse(source))] == ["dagster", "orchestration.partitions"]


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


def test_the_config_schema_loads_no_training_stack_and_no_orchestrator():
    """Before: ``import embodied_r.config`` loaded torch and transformers (its sections lived in the training
    modules), so ``embodied-r check-params`` paid for the training stack."""
    loaded = _modules_loaded_by("import embodied_r.config")
    assert "embodied_r" in loaded
    assert loaded.isdisjoint({"torch", "transformers", "trl", "dagster", "orchestration", "mlflow"}), loaded


def test_the_library_cli_parser_loads_no_orchestrator():
    loaded = _modules_loaded_by("from embodied_r.cli import build_parser; build_parser()")
    assert loaded.isdisjoint({"torch", "dagster", "orchestration"}), loaded
