"""A local Hugging Face VLM (the Qwen2.5-VL family) as the perception VLM.

Loaded with ``AutoModelForImageTextToText`` and ``AutoProcessor``; the prompt is the chat template with the
key frames as image parts before the text. Greedy when ``temperature`` is 0, sampling otherwise (seeded per
request, so reruns give the same text). Model code from the checkpoint only when ``trust_remote_code`` is set.

Without ``torchvision`` installed, ``AutoProcessor`` cannot build Qwen2.5-VL's *video* processor, which images
do not need; the backend then loads the tokenizer and image processor with their auto classes and expands each
``<|image_pad|>`` into the image's patch count itself (exactly what the processor does for images).
Generation runs under a lock: one model, called from the driver's worker threads.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

from embodied_r.perception.backends.base import DescribeRequest, PerceptionError, VisionLanguageModel, VLMAnswer
from embodied_r.perception.config import PerceptionConfig

logger = logging.getLogger(__name__)

IMAGE_TOKEN = "<|image_pad|>"


class TransformersBackend(VisionLanguageModel):
    """``describe`` runs ``model.generate`` on the chat-templated prompt and images; returns new text and counts."""

    name = "transformers"

    def __init__(self, cfg: PerceptionConfig) -> None:
        import torch
        from transformers import AutoModelForImageTextToText

        self.cfg = cfg
        self._lock = threading.Lock()
        dtype = "auto" if cfg.dtype == "auto" else getattr(torch, cfg.dtype)
        load: dict[str, Any] = {"trust_remote_code": cfg.trust_remote_code, "dtype": dtype}
        if cfg.device == "auto":
            load["device_map"] = "auto"
        self.model = AutoModelForImageTextToText.from_pretrained(cfg.model, **load)
        if cfg.device != "auto":
            self.model.to(cfg.device)
        self.model.eval()
        self.processor, self.tokenizer, self.image_processor = self._load_processor()

    def _load_processor(self) -> tuple[Any, Any, Any]:
        from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

        trust = self.cfg.trust_remote_code
        try:
            processor = AutoProcessor.from_pretrained(self.cfg.model, trust_remote_code=trust)
            return processor, processor.tokenizer, processor.image_processor
        except ImportError as exc:  # e.g. the video processor needs torchvision
            logger.info("AutoProcessor unavailable (%s); using tokenizer + image processor", str(exc).strip()[:120])
        tokenizer = AutoTokenizer.from_pretrained(self.cfg.model, trust_remote_code=trust)
        image_processor = AutoImageProcessor.from_pretrained(self.cfg.model, trust_remote_code=trust)
        return None, tokenizer, image_processor

    def _inputs(self, request: DescribeRequest) -> dict[str, Any]:
        from PIL import Image

        images = []
        for path in request.images:
            with Image.open(path) as im:
                image = im.convert("RGB")
            side = self.cfg.image_max_side
            if side is not None and max(image.size) > side:
                image.thumbnail((side, side))
            images.append(image)
        content = [{"type": "image"} for _ in images] + [{"type": "text", "text": request.prompt}]
        messages = [{"role": "user", "content": content}]
        if self.processor is not None:
            text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            return dict(self.processor(text=[text], images=images, return_tensors="pt"))
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        vision = self.image_processor(images=images, return_tensors="pt")
        merge = getattr(self.image_processor, "merge_size", 2) ** 2
        pieces = text.split(IMAGE_TOKEN)
        if len(pieces) != len(images) + 1:
            raise PerceptionError(f"chat template produced {len(pieces) - 1} image slots for {len(images)} images")
        expanded = pieces[0]
        for grid, rest in zip(vision["image_grid_thw"], pieces[1:], strict=True):
            expanded += IMAGE_TOKEN * int(grid.prod().item() // merge) + rest
        return dict(self.tokenizer([expanded], return_tensors="pt")) | dict(vision)

    def describe(self, request: DescribeRequest) -> VLMAnswer:
        """Generate the answer for one request (greedy at temperature 0)."""
        import torch

        inputs = {k: (v.to(self.model.device) if hasattr(v, "to") else v) for k, v in self._inputs(request).items()}
        gen: dict[str, Any] = {"max_new_tokens": self.cfg.max_tokens}
        if self.cfg.temperature > 0:
            gen |= {"do_sample": True, "temperature": self.cfg.temperature}
            if self.cfg.top_p is not None:
                gen["top_p"] = self.cfg.top_p
        else:
            gen["do_sample"] = False
        seed = int.from_bytes(hashlib.sha256(request.prompt.encode() + str(request.images).encode()).digest()[:4])
        with self._lock, torch.inference_mode():
            torch.manual_seed(seed)
            output = self.model.generate(**inputs, **gen)
        prompt_len = inputs["input_ids"].shape[1]
        new = output[0, prompt_len:]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        return VLMAnswer(text=text, prompt_tokens=int(prompt_len), completion_tokens=int(new.shape[0]))
