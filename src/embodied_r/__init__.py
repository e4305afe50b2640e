"""embodied-r: a reproducible pipeline for Embodied-R (arXiv 2504.12680).

A frozen vision-language model turns the key frames of an egocentric video into text;
a small language model reasons over that text and is trained with GRPO.
"""

__version__ = "0.1.0"
