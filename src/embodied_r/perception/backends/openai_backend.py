"""Any OpenAI-compatible chat-completions server (vLLM, DashScope, OpenAI) as the perception VLM.

Retries on timeouts, connection errors, 408/409/429 and 5xx are the ``openai`` SDK's own (exponential backoff
from 0.5 s, honouring ``Retry-After``), set by ``max_retries`` and ``timeout_s``; the error left after the last
retry propagates and the driver records it as a failure of that item.

The API key comes from the environment variable named by ``api_key_env``, by the project's one policy for
OpenAI-compatible servers (:mod:`embodied_r.openai_client`, shared with the consistency judge): when it is unset
and ``base_url`` points to this machine (a local vLLM accepts any key) the placeholder ``EMPTY`` is used; for a
remote server a missing key is an error naming the variable. The key is never logged nor put in an exception
message: a server error may echo it (``401 Incorrect API key provided: sk-...``), so every SDK error is turned
into a :class:`PerceptionError` whose text went through :func:`~embodied_r.redaction.redact_secrets` (the key and
anything shaped like one removed), raised ``from None`` so no traceback shows the original message.
"""

from __future__ import annotations

import openai

from embodied_r.openai_client import MissingAPIKeyError, openai_client
from embodied_r.openai_client import resolve_api_key as resolve_key
from embodied_r.perception.backends.base import DescribeRequest, PerceptionError, VisionLanguageModel, VLMAnswer
from embodied_r.perception.backends.images import jpeg_data_uri
from embodied_r.perception.config import PerceptionConfig
from embodied_r.redaction import redact_secrets


def resolve_api_key(cfg: PerceptionConfig) -> str:
    """The API key from ``os.environ[cfg.api_key_env]``; ``EMPTY`` for a local server without one."""
    try:
        return resolve_key(cfg.api_key_env, cfg.base_url, setting="perception.api_key_env")
    except MissingAPIKeyError as exc:
        raise PerceptionError(str(exc)) from None


class OpenAIBackend(VisionLanguageModel):
    """Chat completions with the key frames as base64 JPEG ``image_url`` parts after the prompt text."""

    name = "openai"

    def __init__(self, cfg: PerceptionConfig) -> None:
        self.cfg = cfg
        api_key = resolve_api_key(cfg)
        self._secrets = (api_key,)
        # The SDK client is thread-safe (one httpx connection pool shared by the worker threads).
        self._client = openai_client(
            base_url=cfg.base_url, api_key=api_key, timeout_s=cfg.timeout_s, max_retries=cfg.max_retries
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
        try:
            response = self._client.chat.completions.create(
                model=self.cfg.model, messages=[{"role": "user", "content": content}], **kwargs
            )
        except openai.APIError as exc:
            # from None: the SDK's exception text may echo the key, and a chained traceback would print it.
            raise PerceptionError(f"{request.video_id} k={request.k}: {self.error_text(exc)}") from None
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

    def error_text(self, exc: BaseException) -> str:
        """``"<ErrorType>: <message>"`` with the API key and anything shaped like a credential redacted."""
        return redact_secrets(f"{type(exc).__name__}: {exc}", known_secrets=self._secrets)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()
