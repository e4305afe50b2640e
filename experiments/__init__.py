"""Research studies: one-off questions about learning on a CPU, apart from the product's regression benchmarks.

``benchmarks/`` times the pipeline's stages (key frames, perception calls, a GRPO step, evaluation) and guards
them against regressions; the scripts here ask research questions instead (does a recipe learn, is there anything
to learn, does a model know more than a letter bias, would GRPO get a gradient). Each calls the library and appends
its records to ``experiments/out/`` (git-ignored). They are a package, so one study can use another's helpers
(``paired`` reuses ``learning``'s scoring); run them from the project root as modules:

    .venv/bin/python -m experiments.learning --help

Their tests are outside the default ``pytest`` run: ``make test-experiments``.
"""
