"""Videos: safe paths, a cheap readability check, lazy extraction from VSI-Bench zips."""

from __future__ import annotations

import logging
import os
import re
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from embodied_r.data.adapters.common import ExtractionError, _Excluded

logger = logging.getLogger(__name__)

#: Extensions tried, in order, for a ``video_id`` given without one.
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv")

_VIDEO_CHECK_CACHE: dict[tuple[str, int, int], str | None] = {}


def check_video(path: Path) -> str | None:
    """``None`` if the video opens and has at least one frame, else why not.

    Cheap (OpenCV header + at most one decoded frame) and cached per file, keyed by
    path, size and modification time so a replaced file is checked again.
    """
    try:
        st = path.stat()
    except OSError as exc:
        return f"cannot stat {path}: {exc}"
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _VIDEO_CHECK_CACHE:
        _VIDEO_CHECK_CACHE[key] = _probe_video(path, st.st_size)
    return _VIDEO_CHECK_CACHE[key]


def _probe_video(path: Path, size: int) -> str | None:
    if size == 0:
        return "empty file"
    import cv2  # heavy import, only needed when videos are checked

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return "cannot be opened as a video"
        if capture.get(cv2.CAP_PROP_FRAME_COUNT) > 0:
            return None
        # Some containers do not report a frame count; decoding one frame settles it.
        ok, _ = capture.read()
        return None if ok else "has no decodable frames"
    finally:
        capture.release()


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _unsafe_relative(name: str) -> str | None:
    """Why a relative path taken from data is unsafe, or ``None``."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or os.path.isabs(name):
        return "is an absolute path"
    parts = re.split(r"[\\/]+", name)
    if ".." in parts:
        return "contains '..'"
    return None


def _resolve_video_file(videos_dir: Path, video_id: str) -> Path:
    """The video file for ``video_id`` under ``videos_dir``, resolved and checked safe.

    ``video_id`` with a known extension is used as is; otherwise the bare name and then
    each of :data:`VIDEO_EXTENSIONS` are tried. Symlinks are followed and the target must
    still lie inside ``videos_dir``.
    """
    why = _unsafe_relative(video_id)
    if why:
        raise _Excluded("path_traversal", f"video_id {video_id!r} {why}")
    root = videos_dir.resolve()
    if Path(video_id).suffix.lower() in VIDEO_EXTENSIONS:
        candidates = [video_id]
    else:
        candidates = [video_id] + [video_id + ext for ext in VIDEO_EXTENSIONS]
    for name in candidates:
        path = videos_dir / name
        if path.is_file() or path.is_symlink():
            resolved = path.resolve()
            if not _is_within(resolved, root):
                raise _Excluded("path_traversal", f"video {path} resolves to {resolved}, outside {root}")
            if not resolved.is_file():
                raise _Excluded("missing_video", f"video {path} is a broken link")
            return resolved
    tried = ", ".join(candidates)
    raise _Excluded("missing_video", f"no video file under {videos_dir} for {video_id!r} (tried: {tried})")


def _require_readable(path: Path) -> None:
    problem = check_video(path)
    if problem:
        raise _Excluded("unreadable_video", f"{path}: {problem}")


@dataclass
class _ZipSource:
    """One ``{dataset}.zip`` of VSI-Bench videos, indexed by member basename on first use."""

    path: Path
    error: str | None = None
    members: dict[str, zipfile.ZipInfo] = field(default_factory=dict)
    unsafe: dict[str, str] = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path) -> _ZipSource:
        source = cls(path)
        try:
            with zipfile.ZipFile(path) as archive:
                infos = archive.infolist()
        except (zipfile.BadZipFile, OSError) as exc:
            source.error = f"cannot read zip {path}: {exc}"
            return source
        for info in sorted(infos, key=lambda i: (i.filename.count("/"), i.filename)):
            if info.is_dir():
                continue
            base = PurePosixPath(info.filename.replace("\\", "/")).name
            why = _unsafe_relative(info.filename)
            if why is None and stat.S_ISLNK(info.external_attr >> 16):
                why = "is a symbolic link"
            if why:
                source.unsafe.setdefault(base, f"zip member {info.filename!r} in {path} {why}")
                continue
            # Shallowest path wins when two folders hold the same file name.
            source.members.setdefault(base, info)
        return source

    def extract(self, filename: str, target: Path) -> Path:
        """Extract one member (by basename) to ``target``, unless already there with the same size.

        A member that cannot be read (corrupt, encrypted, unsupported compression) excludes its
        record (``unreadable_video``); a target that cannot be written raises :class:`ExtractionError`,
        since every other member would fail the same way.
        """
        if self.error:
            raise _Excluded("unreadable_video", self.error)
        info = self.members.get(filename)
        if info is None:
            if filename in self.unsafe:
                raise _Excluded("path_traversal", self.unsafe[filename])
            raise _Excluded("missing_video", f"{filename} not found in {self.path}")
        if target.is_file() and target.stat().st_size == info.file_size:
            return target
        # We choose the output path ourselves and only copy bytes, so the member's own
        # path never decides where anything is written (no zip-slip).
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        except OSError as exc:
            raise _extraction_error(target, exc) from exc
        try:
            with os.fdopen(fd, "wb") as dst:
                self._copy_member(info, dst, target)
            os.replace(tmp_name, target)
        except OSError as exc:
            raise _extraction_error(target, exc) from exc
        finally:
            Path(tmp_name).unlink(missing_ok=True)
        logger.debug("extracted %s from %s to %s", info.filename, self.path, target)
        return target

    def _copy_member(self, info: zipfile.ZipInfo, dst: Any, target: Path) -> None:
        """Copy one member's bytes; read errors exclude the record, write errors raise ExtractionError."""
        try:
            with zipfile.ZipFile(self.path) as archive, archive.open(info) as src:
                while True:
                    try:
                        chunk = src.read(_COPY_CHUNK)
                    except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, zlib.error) as exc:
                        raise _Excluded(
                            "unreadable_video", f"cannot extract {info.filename} from {self.path}: {exc}"
                        ) from exc
                    if not chunk:
                        return
                    try:
                        dst.write(chunk)
                    except OSError as exc:
                        raise _extraction_error(target, exc) from exc
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError) as exc:
            # Opening the archive or the member failed (bad header, encryption, unknown compression).
            raise _Excluded("unreadable_video", f"cannot extract {info.filename} from {self.path}: {exc}") from exc


_COPY_CHUNK = 1 << 20


def _extraction_error(target: Path, exc: OSError) -> ExtractionError:
    folder = target.parent.parent  # <extract_dir>/<dataset>/<file>
    return ExtractionError(
        f"cannot write extracted videos to {folder} ({exc.strerror or exc}). Videos from VSI-Bench zips are "
        f"extracted there, outside the dataset folder; set data.extract_dir in params.yaml to a writable folder "
        f"with room for the videos (relative to the project root), or free some space."
    )
