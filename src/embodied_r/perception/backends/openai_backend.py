"""Any OpenAI-compatible chat-completions server (vLLM, DashScope, OpenAI) as the perception VLM.

Retries on timeouts, connection errors, 408/409/429 and 5xx are the ``openai`` SDK's own (exponential backoff
from 0.5 s, honouring ``Retry-After``), set by ``max_retries`` and ``timeout_s``; the error left after the last
retry propagates and the driver records it as a failure of that item.

The API key comes from the environment variable named by ``api_key_env``. When it is unset and ``base_url``
points to this machine (a local vLLM accepts any key) the placeholder ``EMPTY`` is used; for a remote server a
missing key is an error naming the variable. The key is never logged nor put in an exception message.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import urlparse

from embodied_r.perception.backends.base import DescribeRequest, PerceptionError, VisionLanguageModel, VLMAnswer
from embodied_r.perception.backends.images import jpeg_data_uri
from embodied_r.perception.config import PerceptionConfig

logger = logging.getLogger(__name__)

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
PLACEHOLDER_KEY = "EMPTY"


def resolve_api_key(cfg: PerceptionConfig) -> str:
    """The API key from ``os.environ[cfg.api_key_env]``; ``EMPTY`` for a local server without one."""
    key = os.environ.get(cfg.api_key_env, "").strip()
    if key:
        return key
    host = urlparse(cfg.base_url).hostname or ""
    if host in LOCAL_HOSTS:
        logger.info("%s is not set; using a placeholder key for the local server %s", cfg.api_key_env, cfg.base_url)
        return PLACEHOLDER_KEY
    raise PerceptionError(
        f"the environment variable {cfg.api_key_env} (perception.api_key_env) is not set; it must hold the API key "
        f"for {cfg.base_url}"
    )


class OpenAIBackend(VisionLanguageModel):
    """Chat completions with the key frames as base64 JPEG ``image_url`` parts after the prompt text."""

    name = "openai"

    def __init__(self, cfg: PerceptionConfig) -> None:
        from openai import OpenAI

        self.cfg = cfg
        # The SDK client is thread-safe (one httpx connection pool shared by the worker threads).
        self._client = OpenAI(
            api_key=resolve_api_key(cfg),
            base_url=cfg.base_url,
            timeout=cfg.timeout_s,
            max_retries=cfg.max_retries,
        )

    def describe(self, request: DescribeRequest) -> VLMAnswer:
        """One chat completion: text first, then the images (k−1 before k), as the official code."""
        content: list[dict] = [{"type": "text", "text": request.prompt}]
        for path in request.images:
            url = jpeg_data_uri(path, self.cfg.image_max_side, self.cfg.jpeg_quality)
            content.append({"type": "image_url", "image_url": {"url": url}})
        kwargs: dict = {"temperature": self.cfg.temperature, "max_tokens": self.cfg.max_tokens}
        if self.cfg.top_p is not None:
            kwargs["top_p"] = self.cfg.top_p
        response = self._client.chat.completions.create(
            model=self.cfg.model, messages=[{"role": "user", "content": content}], **kwargs
        )
        if not response.choices:
            raise PerceptionError(f"{request.video_id} k={request.k}: the server returned no choices")
        text = response.choices[0].message.content
        if not isinstance(text, str) or not text.strip():
            raise PerceptionError(f"{request.video_id} k={request.k}: the server returned an empty answer")
        usage = response.usage
        return VLMAnswer(
            text=text,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()
