"""Profiles: named sets of ``params.yaml`` changes (``profiles/<name>.yaml``) on top of the committed demo.

``params.yaml`` as committed *is* the ``demo`` profile. Every other profile is a small YAML file that lists only
what it changes (``tiny`` for CI, ``cpu-long`` for an hour or two of real learning here, ``paper`` for the paper's
setup on a GPU cluster). Profiles compose: :func:`compose_profiles` applies several in order on top of the params
file — mappings key by key, lists and scalars replaced, a later profile winning on a key two of them set — and
validates the result without writing anything. Three ways to use a composition:

* ``embodied-r demo --profile a,b`` (``make demo PROFILE=a,b``) runs the lineage under it as a DVC experiment and
  leaves ``params.yaml`` as committed (:mod:`embodied_r.dvc_experiment`);
* ``embodied-r materialize --profile a,b`` / ``ui --profile a,b``: Dagster's runs read it, nothing is written;
* ``embodied-r profile a b`` (:func:`apply_profile`) writes it into ``params.yaml``, keeping the file's comments:
  for a user who wants the change kept (``dvc repro`` then reruns exactly the stages whose params changed).

>>> deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}, "d": [1]})
{'a': {'b': 1, 'c': 3}, 'd': [1]}
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embodied_r.config import Params, ParamsError, parse_params, read_yaml_mapping

PROFILES_DIR = "profiles"
#: The profile ``params.yaml`` holds as committed.
DEFAULT_PROFILE = "demo"
#: Joins the names of composed profiles in the ``profile`` key (``tiny+cpu-long``): what MLflow and Dagster show.
JOIN = "+"


def deep_merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied: nested mappings merged key by key, everything else replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping) and value:
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def available_profiles(root: Path) -> dict[str, str]:
    """Profile name → its one-line description (the first comment of its file), ``demo`` included."""
    found = {DEFAULT_PROFILE: "the committed params.yaml: the whole lineage on a CPU, 38 min on 2 AVX-512 cores"}
    for path in sorted((root / PROFILES_DIR).glob("*.yaml")):
        first = next((line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")), "#")
        found[path.stem] = first.lstrip("# ").strip()
    return found


def profile_names(values: Iterable[str] | str | None) -> list[str]:
    """The profile names of ``--profile a,b --profile c`` (or ``"a,b"``), in order, blanks dropped.

    >>> profile_names(["tiny,cpu-long", " paper "])
    ['tiny', 'cpu-long', 'paper']
    """
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def profile_changes(root: Path, name: str) -> dict[str, Any]:
    """The changes profile ``name`` makes (empty for ``demo``); an unknown name lists the known ones."""
    if name == DEFAULT_PROFILE:
        return {}
    path = root / PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ParamsError(f"unknown profile {name!r}; available: {', '.join(available_profiles(root))}")
    return {"profile": name, **read_yaml_mapping(path)}


@dataclass(frozen=True)
class Composition:
    """Profiles applied in order on top of a params file, validated; nothing written."""

    #: The profiles applied, in order (``demo``, which changes nothing, left out).
    names: tuple[str, ...]
    #: What the ``profile`` key holds: the names joined by ``+`` (after the file's own when it is not the demo).
    name: str
    #: The params file's profile before the composition (``demo`` as committed).
    base: str
    #: The composed params, as a mapping (what :func:`apply_profile` writes).
    data: dict[str, Any]
    params: Params
    #: One line per key a profile changes: ``cpu-long: grpo.max_steps: 80 -> 160``, ``(overrides tiny)`` when an
    #: earlier profile of the composition had set it.
    changes: tuple[str, ...]

    def describe(self) -> str:
        """What each profile changes, one key a line, under a heading naming the composition."""
        if not self.names:
            return f"profile {self.name!r}: no changes"
        return "\n".join([f"profile {self.name!r} ({' then '.join(self.names)}; a later one wins):", *self.changes])


def compose_profiles(root: Path, names: Iterable[str], params_file: str | Path = "params.yaml") -> Composition:
    """Profiles ``names`` applied in order on top of ``root / params_file``, validated, nothing written.

    A key two profiles set takes the later one's value (the report says which it overrides); an unknown name or
    an invalid result raises :class:`~embodied_r.config.ParamsError` naming the profiles and the bad key.
    """
    names = tuple(name for name in profile_names(list(names)) if name != DEFAULT_PROFILE)
    path = root / params_file
    if not path.is_file():
        raise ParamsError(f"{path}: no such params file (run from the project root or pass --params)")
    data = read_yaml_mapping(path)
    base = str(data.get("profile", DEFAULT_PROFILE))
    set_by: dict[str, str] = {}
    lines: list[str] = []
    for name in names:
        changes = profile_changes(root, name)
        changes.pop("profile")
        for key, value in _leaves(changes):
            old = _get(data, key)
            if old != value:
                overrides = f" (overrides {set_by[key]})" if key in set_by else ""
                lines.append(f"  {name}: {key}: {_show(old)} -> {_show(value)}{overrides}")
            set_by[key] = name
        data = deep_merge(data, changes)
    # On top of the demo: "a+b"; of a kept profile: "kept+a+b"; the same profiles again: unchanged.
    applied = JOIN.join(names)
    name = base if not names or applied == base else applied if base == DEFAULT_PROFILE else f"{base}{JOIN}{applied}"
    data["profile"] = name
    source = " + ".join([str(params_file), *(f"{PROFILES_DIR}/{n}.yaml" for n in names)])
    return Composition(names, name, base, data, parse_params(copy.deepcopy(data), source), tuple(lines))


def profile_params(root: Path, name: str, params_file: str = "params.yaml") -> Params:
    """The validated params of profile ``name`` (``params.yaml`` with its changes), without writing anything."""
    return compose_profiles(root, [name], params_file).params


def check_stacking(composition: Composition, params_file: str | Path, *, force: bool) -> None:
    """Refuse profiles on top of a params file that already holds another profile, unless ``force``.

    Profiles are written against the committed demo, and a kept profile is easy to forget: compose them in one
    command instead (re-applying the same composition is fine).
    """
    if force or composition.base in (DEFAULT_PROFILE, composition.name) or not composition.names:
        return
    wanted = " ".join(composition.names)
    raise ParamsError(
        f"{params_file} holds profile {composition.base!r} (kept by `embodied-r profile`), and profiles are "
        f"changes to the committed demo: compose them in one command on the committed file "
        f"(`git restore {params_file}`, then `embodied-r profile {composition.base.replace(JOIN, ' ')} {wanted}`), "
        f"or pass --force to put {wanted!r} on top"
    )


def apply_profile(
    root: Path, names: str | Iterable[str], *, params_file: str = "params.yaml", force: bool = False
) -> Params:
    """Write profiles ``names`` (composed in order) into ``params.yaml``, comments kept; the validated params back.

    Validated before the file is touched. On a params file that already holds another profile this is refused
    unless ``force`` (:func:`check_stacking`).
    """
    composition = compose_profiles(root, [names] if isinstance(names, str) else names, params_file)
    check_stacking(composition, params_file, force=force)
    write_composition(root / params_file, composition, root)
    return composition.params


def write_composition(path: Path, composition: Composition, root: Path) -> None:
    """Merge ``composition``'s profiles into the params file ``path`` in place, keeping its comments and order."""
    from ruamel.yaml import YAML

    rt = YAML()  # round-trip: comments and key order survive
    rt.preserve_quotes = True
    rt.width = 120
    document = rt.load(path.read_text(encoding="utf-8"))
    for name in composition.names:  # one after the other, as compose_profiles applied them
        _merge_into(document, profile_changes(root, name))
    document["profile"] = composition.name
    out = io.StringIO()
    rt.dump(document, out)
    path.write_text(out.getvalue(), encoding="utf-8")


def _merge_into(node: Any, changes: Mapping[str, Any]) -> None:
    from ruamel.yaml.comments import CommentedSeq

    for key, value in changes.items():
        if isinstance(value, Mapping) and value and isinstance(node.get(key), Mapping):
            _merge_into(node[key], value)
        elif isinstance(value, list):
            seq = CommentedSeq(copy.deepcopy(value))
            if not any(isinstance(item, Mapping) for item in value):  # data.sources: one entry a block
                seq.fa.set_flow_style()  # lists stay on one line, as params.yaml writes them
            node[key] = seq
        else:
            node[key] = copy.deepcopy(value)


def _leaves(changes: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of every value a change sets (a list or an empty mapping is one value)."""
    for key, value in changes.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, f"{dotted}.")
        else:
            yield dotted, value


def _get(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _show(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)  # null, true, "text", [1, 2]: close to how YAML writes them
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = [
    "DEFAULT_PROFILE",
    "Composition",
    "apply_profile",
    "available_profiles",
    "check_stacking",
    "compose_profiles",
    "deep_merge",
    "profile_changes",
    "profile_names",
    "profile_params",
    "write_composition",
]
