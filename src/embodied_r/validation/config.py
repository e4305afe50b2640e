"""Thresholds of the perception data-quality suites.

The model lives in :mod:`embodied_r.config` (the ``validation:`` section of ``params.yaml``, whose
key-frame bounds default to the clamp bounds of the key-frame stage); it is re-exported here.
"""

from embodied_r.config import DEFAULT_REFUSAL_PATTERNS, ValidationConfig

__all__ = ["DEFAULT_REFUSAL_PATTERNS", "ValidationConfig"]
