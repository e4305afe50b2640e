"""Batch predictions over new videos: the inbox (:mod:`.inbox`) and the stage that answers one video's questions
with the registered model (:mod:`.stage`, the ``predictions`` asset's library side)."""

from embodied_r.predictions.inbox import (
    Inbox,
    InboxError,
    InboxQuestion,
    InboxVideo,
    read_inbox,
)
from embodied_r.predictions.stage import (
    BadVideoError,
    ModelNotFoundError,
    PredictionsOutcome,
    PredictionsRun,
    inbox_folder,
    model_uri,
    predict_video,
    predict_videos,
    resolve_model_version,
)

__all__ = [
    "BadVideoError",
    "Inbox",
    "InboxError",
    "InboxQuestion",
    "InboxVideo",
    "ModelNotFoundError",
    "PredictionsOutcome",
    "PredictionsRun",
    "inbox_folder",
    "model_uri",
    "predict_video",
    "predict_videos",
    "read_inbox",
    "resolve_model_version",
]
