"""Dagster knows what DVC knows: each asset's ``code_version`` is the hash of the code its DVC stage lists in
``deps``, and no code reaches into Dagster's internals."""

import ast
import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

from embodied_r.code_version import StageCodeError, stage_code_version, stage_code_versions
from orchestration.assets.data import raw_videos
from orchestration.definitions import ASSETS
from orchestration.resources import ProjectResource
from tests.conftest import PROJECT_ROOT

#: A file only the SFT baseline runs, one only the key-frame asset is, and one most training stages share.
SFT_ONLY = "src/embodied_r/training/traces.py"
KEYFRAMES_ONLY = "orchestration/assets/keyframes.py"
SHARED = "src/embodied_r/training/stage.py"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the project's code and dvc.yaml (no bytecode, no data)."""
    root = tmp_path / "checkout"
    for folder in ("src", "orchestration"):
        shutil.copytree(PROJECT_ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT_ROOT / "dvc.yaml", root / "dvc.yaml")
    return root


def _stages_listing(root: Path, path: str) -> set[str]:
    """The stages whose dvc.yaml deps name ``path`` or a folder holding it."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    return {name for name, spec in stages.items() if any(path == d or path.startswith(d + "/") for d in spec["deps"])}


def _edit(root: Path, path: str) -> None:
    with (root / path).open("a") as fh:
        fh.write("\n# an edit\n")


def test_every_asset_has_the_code_version_of_its_dvc_stage():
    versions = stage_code_versions(PROJECT_ROOT)
    for asset in ASSETS:
        for key, version in asset.code_versions_by_key.items():
            name = key.to_user_string()
            assert version, f"{name} has no code_version"
            assert version == versions[name], name
    assert len({v for a in ASSETS for v in a.code_versions_by_key.values()}) == len(ASSETS)  # no two alike


@pytest.mark.slow
def test_a_materialization_records_the_code_version_the_ui_compares(tiny_project):
    """Dagster stores the asset's code version with each materialization; the UI reports "code version changed"
    when the definitions' version differs from it."""
    instance = dg.DagsterInstance.ephemeral()
    resources = {"project": ProjectResource(root=str(tiny_project))}
    assert dg.materialize([raw_videos], instance=instance, resources=resources).success
    event = instance.get_latest_materialization_event(dg.AssetKey("raw_videos"))
    recorded = event.asset_materialization.tags["dagster/code_version"]
    assert recorded == stage_code_version("raw_videos", PROJECT_ROOT)


@pytest.mark.parametrize("path", [SFT_ONLY, KEYFRAMES_ONLY, SHARED])
def test_editing_a_file_changes_the_code_version_of_exactly_the_stages_that_run_it(checkout, path):
    listing = _stages_listing(checkout, path)
    assert listing, f"no stage lists {path}: pick another file"
    before = stage_code_versions(checkout)
    _edit(checkout, path)
    after = stage_code_versions(checkout)
    assert {stage for stage in before if before[stage] != after[stage]} == listing
    if path != SHARED:
        assert len(listing) == 1


def test_data_bytecode_and_the_checkout_folder_do_not_change_code_versions(checkout, tmp_path):
    before = stage_code_versions(checkout)
    (checkout / "data" / "raw").mkdir(parents=True)  # ${data_dir}/raw: data, tracked by Dagster's asset graph
    (checkout / "data" / "raw" / "videos.jsonl").write_text("{}\n")
    cache = checkout / "src" / "embodied_r" / "training" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "stage.cpython-311.pyc").write_bytes(b"\x00bytecode")
    assert stage_code_versions(checkout) == before
    moved = shutil.copytree(checkout, tmp_path / "elsewhere")
    assert stage_code_versions(moved) == before  # relative paths only: the same on a second machine


def test_a_missing_dep_or_stage_is_one_paragraph_naming_it(checkout):
    with pytest.raises(StageCodeError, match=r"no stage 'new_asset': each Dagster asset is the DVC stage"):
        stage_code_version("new_asset", checkout)
    (checkout / SFT_ONLY).unlink()
    with pytest.raises(StageCodeError, match=r"stage 'sft_lm' lists the dep .*traces\.py.*, which does not exist"):
        stage_code_versions(checkout)
    (checkout / "dvc.yaml").unlink()
    with pytest.raises(StageCodeError, match=r"dvc\.yaml not found"):
        stage_code_versions(checkout)


def _dagster_internals(path: Path) -> list[str]:
    """``dagster._...`` imports, and ``dg._...`` / ``dagster._...`` attribute reads, in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dagster._"):
            found.append(f"{path}:{node.lineno} from {node.module}")
        elif isinstance(node, ast.Import):
            found += [f"{path}:{node.lineno} import {a.name}" for a in node.names if a.name.startswith("dagster._")]
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("dg", "dagster")
            and node.attr.startswith("_")
        ):
            found.append(f"{path}:{node.lineno} {node.value.id}.{node.attr}")
    return found


def test_no_code_reads_dagster_internals():
    files = [p for folder in ("orchestration", "src", "tests") for p in (PROJECT_ROOT / folder).rglob("*.py")]
    assert files
    assert [hit for f in files for hit in _dagster_internals(f)] == []
