"""Key-frame images prepared for upload: optionally downscaled, JPEG-encoded."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2


def jpeg_bytes(path: Path, max_side: int | None, quality: int) -> bytes:
    """The image as JPEG bytes, downscaled (INTER_AREA) so its longer side is at most ``max_side``.

    A JPEG that needs no downscaling is sent as stored (no second lossy encode).
    """
    path = Path(path)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read key frame image {path}")
    h, w = image.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        if path.suffix.lower() in (".jpg", ".jpeg"):
            return path.read_bytes()
    else:
        scale = max_side / max(h, w)
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode {path} as JPEG")
    return buf.tobytes()


def jpeg_data_uri(path: Path, max_side: int | None, quality: int) -> str:
    """``data:image/jpeg;base64,…`` for an OpenAI-style ``image_url`` part."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes(path, max_side, quality)).decode("ascii")
