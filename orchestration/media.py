"""Images in Dagster metadata: markdown with an inline, downscaled PNG."""

import base64
from pathlib import Path

import cv2
import dagster as dg


def image_markdown(path: Path, title: str, max_width: int = 640) -> dg.MarkdownMetadataValue:
    """Markdown showing the image at ``path`` (downscaled to ``max_width``) in the Dagster UI."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return dg.MetadataValue.md(f"*{title}: image {path.name} could not be read*")
    if image.shape[1] > max_width:
        scale = max_width / image.shape[1]
        image = cv2.resize(image, (max_width, round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", image)
    data = base64.b64encode(png.tobytes()).decode("ascii") if ok else ""
    return dg.MetadataValue.md(f"**{title}**\n\n![{title}](data:image/png;base64,{data})")
