"""Configuration of the perception step (the ``perception:`` section of ``params.yaml``).

Defaults are the paper's where it has one (per-question prompts, temperature 0.1 as in the
authors' interactive tool); the backend defaults to the ground-truth ``oracle`` of the embedded
world, with a modest noise that imitates VLM mistakes (all noise probabilities 0 = perfect perception).
The model lives in :mod:`embodied_r.config` with the other sections; it is re-exported here.
"""

from embodied_r.config import PerceptionConfig

__all__ = ["PerceptionConfig"]
