"""Key frames of egocentric videos by homography overlap (reference §1).

>>> from embodied_r.config import KeyframesConfig
>>> result = extract_keyframes("video.mp4", KeyframesConfig())  # doctest: +SKIP
>>> write_keyframe_artifacts(result, None, "out/video")  # doctest: +SKIP
"""

from embodied_r.keyframes.artifacts import (
    ALGORITHM_VERSION,
    build_manifest,
    contact_sheet,
    params_hash,
    read_manifest,
    write_keyframe_artifacts,
)
from embodied_r.keyframes.batch import extract_many
from embodied_r.keyframes.extract import (
    KeptFrame,
    KeyframeResult,
    Selection,
    clamp_positions,
    extract_keyframes,
    select_keyframes,
    warped_overlap,
)
from embodied_r.keyframes.video import (
    VideoError,
    VideoInfo,
    iter_frames,
    probe_video,
    sample_indices,
    sample_step,
)

__all__ = [
    "ALGORITHM_VERSION",
    "KeptFrame",
    "KeyframeResult",
    "Selection",
    "VideoError",
    "VideoInfo",
    "build_manifest",
    "clamp_positions",
    "contact_sheet",
    "extract_keyframes",
    "extract_many",
    "iter_frames",
    "params_hash",
    "probe_video",
    "read_manifest",
    "sample_indices",
    "sample_step",
    "select_keyframes",
    "warped_overlap",
    "write_keyframe_artifacts",
]
