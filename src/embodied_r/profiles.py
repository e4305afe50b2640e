"""Profiles: named sets of ``params.yaml`` changes (``profiles/<name>.yaml``) on top of the committed demo.

``params.yaml`` as committed *is* the ``demo`` profile. Every other profile is a small YAML file that lists only
what it changes (``tiny`` for CI, ``cpu-long`` for an hour or two of real learning here, ``paper`` for the paper's
setup on a GPU cluster). :func:`apply_profile` merges one into ``params.yaml`` in place — mappings key by key,
lists and scalars replaced — keeping the file's comments, after validating the result. Because params.yaml is
what DVC tracks, applying a profile and running ``dvc repro`` reruns exactly the stages whose params changed.

>>> deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}, "d": [1]})
{'a': {'b': 1, 'c': 3}, 'd': [1]}
"""

from __future__ import annotations

import copy
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from embodied_r.config import Params, ParamsError, parse_params, read_yaml_mapping

PROFILES_DIR = "profiles"
#: The profile ``params.yaml`` holds as committed.
DEFAULT_PROFILE = "demo"


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


def profile_changes(root: Path, name: str) -> dict[str, Any]:
    """The changes profile ``name`` makes (empty for ``demo``); an unknown name lists the known ones."""
    if name == DEFAULT_PROFILE:
        return {}
    path = root / PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ParamsError(f"unknown profile {name!r}; available: {', '.join(available_profiles(root))}")
    return {"profile": name, **read_yaml_mapping(path)}


def profile_params(root: Path, name: str, params_file: str = "params.yaml") -> Params:
    """The validated params of profile ``name`` (``params.yaml`` with its changes), without writing anything."""
    base = read_yaml_mapping(root / params_file)
    return parse_params(deep_merge(base, profile_changes(root, name)), f"{params_file} + profiles/{name}.yaml")


def apply_profile(root: Path, name: str, *, params_file: str = "params.yaml", force: bool = False) -> Params:
    """Merge profile ``name`` into ``params.yaml`` (comments kept) and return the validated params.

    Profiles are written against the demo, so applying one on top of another is refused unless ``force``:
    restore the demo first (``git checkout params.yaml``).
    """
    from ruamel.yaml import YAML

    path = root / params_file
    rt = YAML()  # round-trip: comments and key order survive
    rt.preserve_quotes = True
    rt.width = 120
    document = rt.load(path.read_text(encoding="utf-8"))
    current = document.get("profile", DEFAULT_PROFILE)
    if current not in (DEFAULT_PROFILE, name) and not force:
        raise ParamsError(
            f"{path} holds profile {current!r}, and profiles are changes to the demo: restore it first "
            f"(`git checkout {params_file}`), or pass --force to stack {name!r} on top"
        )
    params = profile_params(root, name, params_file)  # validate before touching the file
    _merge_into(document, profile_changes(root, name))
    out = io.StringIO()
    rt.dump(document, out)
    path.write_text(out.getvalue(), encoding="utf-8")
    return params


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


__all__ = ["DEFAULT_PROFILE", "apply_profile", "available_profiles", "deep_merge", "profile_changes", "profile_params"]
