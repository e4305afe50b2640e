"""Adapters that turn real benchmark files into :class:`QuestionRecord` rows.

Three sources, one output shape (:class:`DatasetBuild`: records, exclusions, videos):

* :func:`load_official_json` — the official Embodied-R intermediate JSON (``official.py``).
* :func:`load_urbanvideo` — UrbanVideo-Bench ``MCQ.parquet`` + a folder of videos (``urbanvideo.py``).
* :func:`load_vsibench` — VSI-Bench parquet + per-source video folders or zips (``vsibench.py``).

What they share (errors, exclusions, the build loop) is in ``common.py``; safe video paths, the readability
check and zip extraction in ``videos.py``.

Bad *records* never stop a build: each one is left out with a short machine-readable
reason (see :data:`EXCLUSION_REASONS`) and a human detail, and the rest goes on. A bad
*file* (not JSON/parquet, wrong top-level shape, a required field or column missing
everywhere) raises :class:`DatasetFormatError`, naming the file, the field and the fix.

Checks, in the order they run for each record: fields present and non-empty
(``invalid_record``), question id not seen before in this file (``duplicate_id``; the
first occurrence owns the id even if it is itself excluded later, so an ambiguous id
never silently picks the second copy), answer among the parsed choices
(``answer_not_in_choices``), video path stays inside the videos folder
(``path_traversal``), video exists (``missing_video``), video opens and has frames
(``unreadable_video``, checked once per file and cached).

Category selection is not done here: every category is kept and the ingest step filters.
"""

from embodied_r.data.adapters.common import (
    EXCLUSION_REASONS,
    DatasetError,
    DatasetFormatError,
    ExtractionError,
    normalize_answer_letter,
)
from embodied_r.data.adapters.official import OFFICIAL_FIELDS, load_official_json
from embodied_r.data.adapters.urbanvideo import URBANVIDEO_COLUMNS, load_urbanvideo
from embodied_r.data.adapters.videos import VIDEO_EXTENSIONS, check_video
from embodied_r.data.adapters.vsibench import QUESTION_PREFIX, VSIBENCH_COLUMNS, load_vsibench, vsibench_video_id

__all__ = [
    "EXCLUSION_REASONS",
    "OFFICIAL_FIELDS",
    "QUESTION_PREFIX",
    "URBANVIDEO_COLUMNS",
    "VIDEO_EXTENSIONS",
    "VSIBENCH_COLUMNS",
    "DatasetError",
    "DatasetFormatError",
    "ExtractionError",
    "check_video",
    "load_official_json",
    "load_urbanvideo",
    "load_vsibench",
    "normalize_answer_letter",
    "vsibench_video_id",
]
