"""UrbanVideo-Bench: ``MCQ.parquet`` and a folder of drone-flight videos."""

from __future__ import annotations

from pathlib import Path

from embodied_r.data.adapters.common import _Builder, _read_parquet
from embodied_r.data.adapters.official import _process_question_rows
from embodied_r.data.records import DatasetBuild

URBANVIDEO_COLUMNS: tuple[str, ...] = ("Question_id", "video_id", "question_category", "question", "answer")


def load_urbanvideo(mcq_parquet: Path, videos_dir: Path) -> DatasetBuild:
    """Load UrbanVideo-Bench ``MCQ.parquet``.

    Columns ``Question_id, video_id, question_category, question, answer``; ``question``
    holds "Question: …" and lettered choices, categories like "Landmark Position" are
    normalised to snake_case. Videos are ``videos_dir / video_id`` (extensions tried as in
    :func:`load_official_json`). ``data_source`` is ``"urbanvideo"``.

    ``scene_name`` is the ``video_id``: UrbanVideo has no scene field and each video is its
    own drone flight, so splitting by it keeps all questions of one flight together. A
    ``scene_name`` column, when present, is used instead.
    """
    mcq_parquet = Path(mcq_parquet)
    rows = _read_parquet(mcq_parquet, URBANVIDEO_COLUMNS, optional=("scene_name",))
    has_scene = bool(rows) and "scene_name" in rows[0]
    builder = _Builder("urbanvideo", mcq_parquet)
    _process_question_rows(
        enumerate(rows),
        builder,
        Path(videos_dir),
        scene_field="scene_name" if has_scene else None,
        data_source="urbanvideo",
    )
    return builder.finish()
