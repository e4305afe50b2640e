"""Batch predictions of the registered model over new videos (``predictions``). Not in the paper, which ships no
inference path: nothing here changes a result of the paper's recipe, so no key has a paper value."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from embodied_r.config.section import _Section

#: What names a model of ``tracking.registered_model``: an alias (``champion``) or a version number (``3``).
_ALIAS_OR_VERSION = re.compile(r"^[A-Za-z0-9][\w-]*$")


class PredictionsConfig(_Section):
    """The inbox the ``predictions`` asset (and its sensor) reads, and the model that answers.

    Drop a video into ``inbox`` and add its questions to ``inbox/<questions_file>``, in the official Embodied-R
    JSON format that ingest reads (``data.source: official``): a list of ``{Question_id, video_id, question}``
    objects, the question followed by its lettered choices; ``answer`` and ``question_category`` are optional.
    """

    inbox: str = Field(
        "inbox",
        description="Folder of new videos and their questions file, relative to the project root (git-ignored).",
    )
    questions_file: str = Field("questions.json", min_length=1, description="The questions file, in the inbox.")
    model: str = Field(
        "champion",
        description="The model that answers: an alias (champion) or a version number of tracking.registered_model.",
    )

    @field_validator("model")
    @classmethod
    def _alias_or_version(cls, value: str) -> str:
        if not _ALIAS_OR_VERSION.match(value):
            raise ValueError(
                f"{value!r} is not an alias or a version number of tracking.registered_model: use e.g. champion or 3"
            )
        return value

    @field_validator("questions_file")
    @classmethod
    def _a_file_name(cls, value: str) -> str:
        if "/" in value or "\\" in value or value in (".", ".."):
            raise ValueError(f"{value!r} must be a file name in the inbox folder (e.g. questions.json), not a path")
        return value
