"""Process set-up that every stage's process runs first: the C allocator and torch's threads (issue 40).

Why: a GRPO step allocates and frees tensors of tens to hundreds of MiB (activations, the logits over a
49,152-token vocabulary). glibc ``malloc`` serves every block above its mmap threshold (at most 32 MiB) with a
fresh ``mmap`` and gives it back with ``munmap`` on free, and trims the top of its heap above 128 KiB: the next step
maps the same memory again and the kernel zeroes it page by page — millions of minor page faults and bursts of
system time, not compute. :func:`tune_process` can tell glibc to keep freed memory for reuse instead
(``runtime.malloc_keep_freed``: no mmap for large blocks, ``M_MMAP_MAX`` 0, and a trim threshold of
``runtime.malloc_trim_threshold_mb``). ``benchmarks/allocator.py`` measures the effect (docs/roofline.md: on a
2-core EPYC it saved no measurable time, so it is off by default).

What it sets is also exported as the environment variables glibc and torch read at start-up (``MALLOC_MMAP_MAX_``,
``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_ARENA_MAX``, ``OMP_NUM_THREADS``), so the processes a stage starts (Dagster's
multiprocess steps, ``torchrun`` workers) are tuned the same way before their first allocation. Elsewhere than
glibc (macOS, musl) the allocator part is a no-op, logged once. Nothing here changes a result: only where memory
comes from and how many threads compute.

>>> from embodied_r.config import RuntimeConfig
>>> sorted(malloc_environment(RuntimeConfig(malloc_keep_freed=True)))
['MALLOC_MMAP_MAX_', 'MALLOC_TRIM_THRESHOLD_']
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from embodied_r.config import RuntimeConfig

log = logging.getLogger(__name__)

#: glibc's ``mallopt`` parameters (``<malloc.h>``) and the environment variable glibc reads for each at start-up.
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
MALLOPT_ENV = {
    M_TRIM_THRESHOLD: "MALLOC_TRIM_THRESHOLD_",
    M_MMAP_MAX: "MALLOC_MMAP_MAX_",
    M_ARENA_MAX: "MALLOC_ARENA_MAX",
}
#: mallopt takes an ``int``.
_INT_MAX = 2**31 - 1

#: The settings a stage's process passes to the processes it starts (JSON of the ``runtime`` section).
RUNTIME_ENV = "EMBODIED_R_RUNTIME"

_warned_not_glibc = False


def glibc() -> Any | None:
    """The C library as a ``ctypes.CDLL`` when it is glibc (it has ``mallopt``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
        libc.mallopt  # noqa: B018 — musl has gnu_get_libc_version stubs but no mallopt
    except (OSError, AttributeError):
        return None
    return libc


def malloc_settings(cfg: RuntimeConfig) -> dict[int, int]:
    """The ``mallopt`` parameters ``cfg`` asks for (parameter -> value); empty = glibc's defaults."""
    settings: dict[int, int] = {}
    if cfg.malloc_keep_freed:
        settings[M_MMAP_MAX] = 0  # no mmap: large blocks come from the heap and stay there for reuse once freed
        settings[M_TRIM_THRESHOLD] = min(cfg.malloc_trim_threshold_mb * 2**20, _INT_MAX)
    if cfg.malloc_arena_max:
        settings[M_ARENA_MAX] = cfg.malloc_arena_max
    return settings


def malloc_environment(cfg: RuntimeConfig) -> dict[str, str]:
    """The environment variables that give a child process the same allocator settings as ``cfg``."""
    return {MALLOPT_ENV[param]: str(value) for param, value in malloc_settings(cfg).items()}


def tune_process(cfg: RuntimeConfig | None = None) -> dict[str, str]:
    """Apply ``cfg`` (``params.yaml``'s ``runtime`` section) to this process and its children.

    ``cfg`` None (a process started by a stage, e.g. a ``torchrun`` worker, which has no params file) takes the
    settings the stage's process exported in ``EMBODIED_R_RUNTIME``, else the section's defaults.

    Calls glibc's ``mallopt`` for the allocator settings (a no-op elsewhere than glibc, logged once), sets
    ``OMP_NUM_THREADS`` (and ``torch.set_num_threads`` when torch is already imported) for ``torch_threads``, and
    exports the allocator settings as ``MALLOC_*`` variables for child processes. Call it first, before torch
    allocates (in-process settings apply to the allocations made after it). Returns what it set (name -> value),
    for logging. Safe to call more than once: the last call wins.
    """
    global _warned_not_glibc
    from embodied_r.config import RuntimeConfig

    if cfg is None:
        exported = os.environ.get(RUNTIME_ENV)
        cfg = RuntimeConfig.model_validate_json(exported) if exported else RuntimeConfig()
    os.environ[RUNTIME_ENV] = cfg.model_dump_json()
    applied: dict[str, str] = {}
    settings = malloc_settings(cfg)
    libc = glibc() if settings else None
    if settings and libc is None:
        if not _warned_not_glibc:
            log.info("runtime: the C library is not glibc, so its allocator is left as it is")
            _warned_not_glibc = True
    elif libc is not None:
        for param, value in settings.items():
            if libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) != 1:
                log.warning(
                    "runtime: mallopt(%d, %d) refused by glibc; that setting is left at its default", param, value
                )
                continue
            applied[MALLOPT_ENV[param]] = str(value)
    os.environ.update(applied)  # glibc reads them when a child process starts: the same settings there
    if cfg.torch_threads:
        applied["OMP_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(cfg.torch_threads)
        if "torch" in sys.modules:  # already imported: OMP_NUM_THREADS was read; set its pool directly
            sys.modules["torch"].set_num_threads(cfg.torch_threads)
    if applied:
        log.info("runtime: %s", ", ".join(f"{k}={v}" for k, v in sorted(applied.items())))
    return applied
