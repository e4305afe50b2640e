"""The library's docstring examples run in the default test run: an example that is no longer true fails.

``pytest --doctest-modules`` would do the same for ``src/embodied_r`` alone, but the option applies to every path
collected: over ``tests/`` it imports each folder's ``conftest.py`` as a plain ``conftest`` module and stops at the
second one ("import file mismatch"). So each library module with ``>>>`` examples is one test here, run with
pytest's doctest defaults (``ELLIPSIS``).
"""

from __future__ import annotations

import doctest
import importlib
import io
from contextlib import redirect_stdout
from pathlib import Path

import pytest

import embodied_r

PACKAGE = Path(embodied_r.__file__).parent


def _modules_with_examples() -> list[str]:
    """Dotted names of the library modules whose source holds a ``>>>`` example (read as text: nothing imported)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if ">>>" in path.read_text(encoding="utf-8"):
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = _modules_with_examples()


def test_the_library_has_doc_examples() -> None:
    assert len(MODULES) > 20 and "embodied_r.answers" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_doc_examples_hold(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = io.StringIO()
    tests = [test for test in finder.find(module, name) if test.examples]
    with redirect_stdout(report):  # the runner prints each failure: kept for the assertion message
        for test in tests:
            runner.run(test, out=report.write)
        result = runner.summarize(verbose=False)
    assert result.failed == 0, report.getvalue()
