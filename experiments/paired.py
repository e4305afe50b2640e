"""Two trained models on the same test questions: the gain of the second over the first, with its paired interval.

For checkpoints that already exist (a warm start and the GRPO run that started from it, two GRPO runs, ...):
scores both greedily on the test split of ``--data`` (as ``experiments/learning.py`` does, with the evaluation
settings and ``rewards.accuracy_mode`` of ``--params``) and prints each model's pooled accuracy and 95% bootstrap
interval, the gain and its **paired** 95% bootstrap interval (the same questions resampled for both models), and,
with ``--train-categories``, both models on the trained and on the held-out tasks. Appends a record to ``--out``.

    embodied-r profile cpu-long --out /tmp/cpu-long.yaml   # params.yaml left as it is
    .venv/bin/python -m experiments.paired .cache/learning/warm-<key>/final .cache/learning/grpo-<key>/final \\
        --params /tmp/cpu-long.yaml --train-categories action_generation,obj_appearance_order
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from embodied_r.config import load_params
from embodied_r.data.records import append_jsonl
from embodied_r.layout import Layout
from embodied_r.training.dataset import read_training_rows
from experiments.learning import compare, describe_subset, parse_value, score, summary

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before", help="model folder scored first (e.g. the warm start's final/)")
    ap.add_argument("after", help="model folder compared with it (e.g. the GRPO run's final/)")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--data", default=None, help="data_dir holding training_set/test.jsonl (default: the params')")
    ap.add_argument("-S", "--set", action="append", default=[], help="KEY=VALUE params override (repeatable)")
    ap.add_argument("--train-categories", default="", help="comma-separated tasks the second model was trained on")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "out" / "paired.jsonl"))
    kept = ROOT / ".cache" / "evaluation"
    ap.add_argument("--keep-dir", default=str(kept), help="where completions are kept (an interrupted pass resumes)")
    args = ap.parse_args(argv)

    for model in (args.before, args.after):
        if not Path(model, "config.json").is_file():
            sys.exit(f"{model}: not a model folder (no config.json)")
    overrides = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}
    params = load_params(args.params, overrides)
    test_path = Layout(root=ROOT, data_dir=args.data or params.data_dir).training_set / "test.jsonl"
    if not test_path.is_file():
        sys.exit(f"{test_path} is missing: build the training set first (dvc repro training_set)")
    rows = read_training_rows(test_path)
    trained = set(args.train_categories.split(",")) if args.train_categories else set()
    unknown = trained - {row.category for row in rows}
    if unknown:
        sys.exit(f"--train-categories: {sorted(unknown)} not among the test questions' tasks")
    print(f"{len(rows)} test questions of {test_path}", flush=True)
    before = score(args.before, rows, params, "before", Path(args.keep_dir))
    after = score(args.after, rows, params, "after", Path(args.keep_dir))
    paired = compare(before, after, trained, n=params.evaluation.bootstrap_samples, seed=params.evaluation.seed)
    lo, hi = (100 * v for v in paired["gain_ci95"])
    print(f"  gain {100 * paired['gain']:+.1f} points, paired 95% interval [{lo:+.1f}, {hi:+.1f}]", flush=True)
    for name, entry in paired.get("subsets", {}).items():
        print(describe_subset(name, entry), flush=True)
    record = {
        "before": args.before, "after": args.after, "test": str(test_path), "overrides": overrides,
        "train_categories": sorted(trained), **paired,
        **{f"{label}_{key}": figures[key] for label, figures in (("before", summary(before)), ("after", summary(after)))
           for key in ("pooled", "ci95", "per_category", "answer_shares", "seconds")},
    }  # fmt: skip
    append_jsonl(Path(args.out), record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
