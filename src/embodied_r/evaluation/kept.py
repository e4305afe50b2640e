"""Greedy completions kept on disk as they are generated: an interrupted evaluation resumes where it stopped, and a
rerun of the same model on the same questions with the same settings generates nothing.

A test pass of a 135M LM over ~300 questions takes 12–16 min on two CPU cores and the ``evaluation_results`` asset
runs up to eight of them; without this, a stage killed in its last pass started again from the first.

:func:`generations_path` names the file by everything that determines the completions — the bytes of every file in
the model folder, the rows' ids and prompts in order, and the generation settings — so nothing stale is read back:
retrained weights, another test split or noise level, another ``max_new_tokens`` or batch size is another file.
Scoring, aggregation and the consistency judge are not kept: they are cheap next to generation and rerun with the
current code.

The file holds JSON lines, one per finished row, appended a batch at a time. A line cut short by a kill is dropped
when the file is read (and the file rewritten without it), so that batch is generated again.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from embodied_r.hashing import sha256_file, short_hash
from embodied_r.training.rows import TrainingRow

log = logging.getLogger(__name__)

__all__ = ["KeptGeneration", "append_kept", "generations_path", "model_fingerprint", "read_kept"]

#: Bumped when what a kept line means changes (an old file is then never read back).
FORMAT_VERSION = 1


class KeptGeneration(BaseModel):
    """One finished row of a kept file: its position in the rows, its question id, and the completion."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    row: int
    question_id: str
    text: str
    completion_tokens: int
    truncated: bool


def model_fingerprint(model_dir: str | Path) -> str:
    """A short hash of every file under ``model_dir`` (names and bytes): weights, config, tokenizer, chat template
    and the training records the scoring reads (SmolLM2-135M in fp32, 517 MB: 0.5 s from the page cache, 3.4 s
    from disk here, next to a test pass of 12–16 min)."""
    root = Path(model_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no model folder to evaluate (was the training stage run?)")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return short_hash(*(f"{p.relative_to(root).as_posix()}:{sha256_file(p)}" for p in files))


def generations_path(
    directory: str | Path, model_dir: str | Path, rows: Sequence[TrainingRow], settings: Mapping[str, Any]
) -> Path:
    """``directory/<model fingerprint>-<key>.jsonl``, the key covering the rows (ids and prompts, in order) and
    the generation ``settings`` (every argument that changes a greedy completion: JSON-serialisable values)."""
    questions = json.dumps([[r.question_id, r.prompt] for r in rows], sort_keys=True)
    key = short_hash(str(FORMAT_VERSION), questions, json.dumps(dict(settings), sort_keys=True))
    return Path(directory) / f"{model_fingerprint(model_dir)}-{key}.jsonl"


def read_kept(path: str | Path, rows: Sequence[TrainingRow]) -> dict[int, KeptGeneration]:
    """The finished rows of ``path`` by row position (empty when the file does not exist).

    A line that does not parse — the last one, cut short by a kill — is dropped and the file rewritten without
    it, so later appends stay whole lines. A parsed line for a row that is not there (another question id at that
    position) means the file does not belong to these rows: :class:`ValueError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    kept: dict[int, KeptGeneration] = {}
    good_lines: list[str] = []
    dropped = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            item = KeptGeneration.model_validate_json(line)
        except ValidationError:
            dropped += 1
            continue
        if not 0 <= item.row < len(rows) or rows[item.row].question_id != item.question_id:
            raise ValueError(
                f"{path}: row {item.row} is {item.question_id!r}, not a question of the rows being evaluated; "
                "the file belongs to another evaluation — delete it to generate again"
            )
        kept[item.row] = item
        good_lines.append(line)
    if dropped:
        log.warning(
            "%s: dropped %d unreadable line(s) (an interrupted write); those rows are generated again", path, dropped
        )
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(f"{line}\n" for line in good_lines), encoding="utf-8")
        os.replace(tmp, path)
    return kept


def append_kept(path: str | Path, items: Iterable[KeptGeneration]) -> None:
    """Append finished rows to ``path`` (created with its folder), flushed to disk before returning."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(f"{item.model_dump_json()}\n" for item in items))
        fh.flush()
        os.fsync(fh.fileno())
