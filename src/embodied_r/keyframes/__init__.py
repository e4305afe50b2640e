"""Key frames of egocentric videos by homography overlap (reference §1)."""

from embodied_r.keyframes.artifacts import (
    ALGORITHM_VERSION,
    build_manifest,
    contact_sheet,
    params_hash,
    read_manifest,
    write_keyframe_artifacts,
)
from embodied_r.keyframes.batch import FAILURES_DIR, extract_many, read_failures, write_failure
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
    VIDEO_ERROR_REASONS,
    VideoError,
    VideoInfo,
    iter_frames,
    keyframe_refusal,
    probe_video,
    require_samples,
    sample_indices,
    sample_step,
)

__all__ = [
    "ALGORITHM_VERSION",
    "FAILURES_DIR",
    "VIDEO_ERROR_REASONS",
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
    "keyframe_refusal",
    "params_hash",
    "probe_video",
    "read_failures",
    "read_manifest",
    "require_samples",
    "sample_indices",
    "sample_step",
    "select_keyframes",
    "warped_overlap",
    "write_failure",
    "write_keyframe_artifacts",
]
