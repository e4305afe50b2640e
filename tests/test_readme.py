"""The README and docs/ stay honest: their params claims hold for params.yaml and the profiles, their links resolve.

What counts as a claim (outside fenced code blocks, which hold examples):
- a table whose first header cell is ``params key``: each row names one key in backticks, and each column headed by
  a profile name (``demo``, ``tiny``, ``cpu-long``, ``paper``) gives that profile's value as the first backticked
  YAML value of its cell (a cell without one, such as ``—``, claims nothing);
- anywhere else, an inline code span ``section.key: value`` or ```section.key` = value``: the demo's value, i.e.
  the committed ``params.yaml``;
- any inline code span naming a params key (``section.key``): that key exists.

A claimed value is compared as the config reads it: it is set into the profile's params and validated, so ``2/12``,
``[0.7, 0.05, 0.25]`` and ``0.2`` compare as the schema parses them.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from embodied_r.config import Params, ParamsError, parse_params, read_yaml_mapping
from embodied_r.profiles import available_profiles, deep_merge, profile_changes

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: Files whose params claims are checked (docs/results.md records past runs, with the params of their day).
CHECKED = (README, ROOT / "docs" / "method.md")
#: Files whose relative links must resolve.
LINKED = (README, *sorted((ROOT / "docs").glob("*.md")))
PROFILES = ("demo", "tiny", "cpu-long", "paper")
MAX_README_LINES = 300

_DOTTED = r"[a-z_]+(?:\.[a-z_]+)+"
_CODE = re.compile(r"`([^`]+)`")
_CLAIM = re.compile(rf"^({_DOTTED}): (.+)$")
_EQUALS = re.compile(rf"`({_DOTTED})` = `?([^`\s,;)]+)`?")
_KEY = re.compile(rf"^({_DOTTED})(?:\.\*)?$")
_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")


# ---------------------------------------------------------------------------------------------------------------------
# Reading the markdown
# ---------------------------------------------------------------------------------------------------------------------


def _prose_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, line) of ``path`` outside fenced code blocks."""
    out, fenced = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, line))
    return out


def _blocks(path: Path) -> list[tuple[int, str]]:
    """(first line number, text) of each paragraph or list item outside code blocks, its lines joined: a code span
    may wrap onto the next line, as markdown allows. Each table row and heading is a block of its own."""
    blocks: list[tuple[int, str]] = []
    for number, line in _prose_lines(path):
        starts = re.match(r"\s*(\||#|[-*] |\d+\. )", line)
        if blocks and line.strip() and not starts and not blocks[-1][1].lstrip().startswith(("|", "#")):
            blocks[-1] = (blocks[-1][0], f"{blocks[-1][1]} {line.strip()}")
        elif line.strip():
            blocks.append((number, line))
        else:
            blocks.append((number, ""))  # a blank line ends the paragraph
    return [block for block in blocks if block[1]]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def _tables(path: Path) -> list[list[tuple[int, list[str]]]]:
    """Every table of ``path``: its rows as (line number, cells), the header first, the separator row dropped."""
    tables: list[list[tuple[int, list[str]]]] = []
    current: list[tuple[int, list[str]]] = []
    for number, line in [*_prose_lines(path), (0, "")]:
        if line.lstrip().startswith("|"):
            if not re.fullmatch(r"\s*\|[\s|:-]+\|?\s*", line):
                current.append((number, _cells(line)))
        elif current:
            tables.append(current)
            current = []
    return tables


def _params_tables(path: Path) -> list[list[tuple[int, list[str]]]]:
    return [table for table in _tables(path) if table[0][1][0] == "params key"]


def _table_claims(path: Path) -> list[tuple[str, str, str, str]]:
    """(where, profile, key, value) of every value a ``params key`` table gives."""
    claims = []
    for table in _params_tables(path):
        header = table[0][1]
        for number, cells in table[1:]:
            key = _CODE.fullmatch(cells[0])
            assert key, f"{path.name}:{number}: the first cell of a params table must be one `key`, got {cells[0]!r}"
            for column, cell in zip(header[1:], cells[1:], strict=False):
                value = _CODE.match(cell)
                if column in PROFILES and value:
                    claims.append((f"{path.name}:{number}", column, key.group(1), value.group(1)))
    return claims


def _prose_claims(path: Path) -> list[tuple[str, str, str, str]]:
    """(where, "demo", key, value) of every ``key: value`` span and ```key` = value`` outside params tables."""
    in_params_table = {number for table in _params_tables(path) for number, _ in table}
    claims = []
    for number, line in _blocks(path):
        if number in in_params_table:
            continue
        for span in _CODE.findall(line):
            match = _CLAIM.match(span)
            if match and match.group(1).split(".")[0] in Params.model_fields:
                claims.append((f"{path.name}:{number}", "demo", match.group(1), match.group(2)))
        for key, value in _EQUALS.findall(line):
            if key.split(".")[0] in Params.model_fields:
                claims.append((f"{path.name}:{number}", "demo", key, value.rstrip(".")))  # a sentence's full stop
    return claims


def _named_keys(path: Path) -> list[tuple[str, str]]:
    """(where, key) of every inline code span that names a params key."""
    named = []
    for number, line in _blocks(path):
        for span in _CODE.findall(line):
            match = _KEY.match(span.split(": ")[0])
            if match and match.group(1).split(".")[0] in Params.model_fields:
                named.append((f"{path.name}:{number}", match.group(1)))
    return named


# ---------------------------------------------------------------------------------------------------------------------
# Reading the config
# ---------------------------------------------------------------------------------------------------------------------


def _raw(profile: str) -> dict[str, Any]:
    """The profile's params as a mapping (params.yaml with the profile's changes), before validation."""
    return deep_merge(read_yaml_mapping(ROOT / "params.yaml"), profile_changes(ROOT, profile))


def _get(node: Any, key: str) -> Any:
    for part in key.split("."):
        if isinstance(node, dict):
            node = node[part]
        elif isinstance(node, BaseModel) and part in type(node).model_fields:
            node = getattr(node, part)
        else:
            raise KeyError(key)
    return node


def _is_key(params: Params, key: str) -> bool:
    node: Any = params
    for part in key.split("."):
        if isinstance(node, dict):
            return True  # inside a free-form mapping (e.g. evaluation.noise_study): any name may be a key
        if not (isinstance(node, BaseModel) and part in type(node).model_fields):
            return False
        node = getattr(node, part)
    return True


def _as_read(profile: str, key: str, text: str) -> Any:
    """``text`` (a YAML value) as the config reads it at ``key`` of ``profile``'s params."""
    raw = copy.deepcopy(_raw(profile))
    *parents, last = key.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = yaml.safe_load(text)
    return _get(parse_params(raw, f"the value claimed for {key}"), key)


@pytest.fixture(scope="module")
def loaded() -> dict[str, Params]:
    return {name: parse_params(_raw(name), name) for name in PROFILES}


# ---------------------------------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------------------------------


def test_readme_is_a_guide_of_at_most_300_lines() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines: move details to docs/"


def test_params_tables_are_there_and_name_profiles() -> None:
    # Without this, removing the tables would make the claim checks pass on nothing.
    for path in CHECKED:
        tables = _params_tables(path)
        assert tables, f"{path.name} has no `params key` table"
        for table in tables:
            columns = set(table[0][1][1:]) & set(PROFILES)
            assert columns, f"{path.name}:{table[0][0]}: no column is headed by a profile name ({PROFILES})"
    assert len(_table_claims(ROOT / "docs" / "method.md")) >= 40


def test_every_params_claim_holds_for_its_profile(loaded: dict[str, Params]) -> None:
    claims = [claim for path in CHECKED for claim in (*_table_claims(path), *_prose_claims(path))]
    assert claims
    wrong = []
    for where, profile, key, text in claims:
        if not _is_key(loaded[profile], key):
            wrong.append(f"{where}: {key} is not a params key")
            continue
        try:
            claimed = _as_read(profile, key, text)
        except (ParamsError, yaml.YAMLError) as error:  # a value the config refuses is a wrong claim: say why
            wrong.append(f"{where}: {key}: {text} is not a valid value ({str(error).splitlines()[0]})")
            continue
        actual = _get(loaded[profile], key)
        if claimed != actual:
            wrong.append(f"{where}: {key}: {text} for {profile}, but it is {actual!r}")
    assert not wrong, "README/docs disagree with params.yaml and the profiles:\n" + "\n".join(wrong)


def test_every_named_params_key_exists(loaded: dict[str, Params]) -> None:
    missing = [f"{where}: {key}" for path in CHECKED for where, key in _named_keys(path)]
    missing = [entry for entry in missing if not _is_key(loaded["demo"], entry.split(": ")[1])]
    assert not missing, "README/docs name params keys the schema does not have:\n" + "\n".join(missing)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for _, line in _prose_lines(path) if re.match(r"#{1,6} ", line)}


def test_every_relative_link_resolves() -> None:
    broken = []
    for path in LINKED:
        for number, line in _blocks(path):
            for target in _LINK.findall(line):
                if re.match(r"[a-z]+:", target):
                    continue  # https:, mailto: — not this repository's
                file_part, _, anchor = target.partition("#")
                resolved = (path.parent / file_part).resolve() if file_part else path
                if not resolved.exists():
                    broken.append(f"{path.name}:{number}: {target} (no such file)")
                elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                    broken.append(f"{path.name}:{number}: {target} (no heading #{anchor} in {resolved.name})")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_demo_profile_description_gives_the_measured_wall_time() -> None:
    # `embodied-r profile` lists the demo with its wall time: the one README's profiles table measured.
    rows = [cells for table in _tables(README) for _, cells in table if table[0][1][0] == "profile"]
    row = next(cells for cells in rows if cells[0] == "`demo`")
    measured = re.search(r"\*\*(.+?)\*\*", row[-1])
    assert measured, f"README's demo profile row gives no wall time: {row}"
    assert measured.group(1) in available_profiles(ROOT)["demo"]


def test_the_checks_catch_a_wrong_claim(tmp_path: Path) -> None:
    # The checker itself: a claim the demo contradicts, in each form, is reported.
    doc = tmp_path / "doc.md"
    doc.write_text(
        "| params key | demo | paper |\n|---|---|---|\n| `grpo.dynamic_sampling` | `0` | `0` |\n\n"
        "The default is `cold_start.letters: balanced`, and `grpo.beta` = 0.5.\n\n"
        "```yaml\ngrpo.max_steps: 1\n```\n",
        encoding="utf-8",
    )
    claims = [*_table_claims(doc), *_prose_claims(doc)]
    assert [(profile, key, text) for _, profile, key, text in claims] == [
        ("demo", "grpo.dynamic_sampling", "0"),
        ("paper", "grpo.dynamic_sampling", "0"),
        ("demo", "cold_start.letters", "balanced"),
        ("demo", "grpo.beta", "0.5"),
    ]
    loaded = parse_params(_raw("demo"), "demo")
    paper = parse_params(_raw("paper"), "paper")
    assert _as_read("demo", "grpo.dynamic_sampling", "0") != _get(loaded, "grpo.dynamic_sampling")
    assert _as_read("paper", "grpo.dynamic_sampling", "0") == _get(paper, "grpo.dynamic_sampling")
    assert _as_read("demo", "cold_start.letters", "balanced") != _get(loaded, "cold_start.letters")
    assert _as_read(
        "demo",
        "rewards.schedule",
        "[{until_fraction: 2/12, weights: [7, 3, 0]}, {until_fraction: 1.0, weights: [3, 7, 0]}]",
    ) == _get(loaded, "rewards.schedule")
