"""Learning per CPU-second: cold start → GRPO → greedy test accuracy, for one recipe, timed.

Runs the library directly (no Dagster, no MLflow) on an existing training set (``data/training_set`` of the
params' profile, e.g. after ``dvc repro training_set``), so recipes can be compared quickly. Prints, and appends to
``experiments/out/learning.jsonl``, the warm-started and the GRPO model's pooled test accuracy with 95% bootstrap
intervals, the paired 95% interval of the gain (the same questions resampled for both), per-category accuracy,
format compliance, wall times and seconds per GRPO step; with ``--train-categories``, both models' accuracy and
intervals on the trained and on the held-out tasks.

    .venv/bin/python -m experiments.learning                               # params.yaml as it is
    .venv/bin/python -m experiments.learning -S grpo.max_steps=200 -S grpo.learning_rate=2e-5 --tag lr2e-5
    # another profile, composed into a copy (params.yaml left as it is)
    embodied-r profile cpu-long --out /tmp/cpu-long.yaml
    .venv/bin/python -m experiments.learning --params /tmp/cpu-long.yaml -S grpo.beta=0.04 --tag kl0.04

The cold-start and SFT models are cached under ``.cache/learning/`` by their settings and training data, so recipes
that differ only in GRPO share them. The completions of every test pass are kept in ``.cache/evaluation/`` as they are
generated (:mod:`embodied_r.evaluation.kept`): an interrupted pass resumes, and a shared warm start is decoded once
(later runs read its completions back and only score them). ``--sft`` also trains and scores the SFT baseline.
``--categories`` keeps only those tasks (training and test); ``--train-categories`` trains on those tasks only and
still tests on every task (the others are held out); ``--train-limit N --score-train`` trains on the first N training
rows and also scores the models on them (does GRPO fit questions it has seen? a check of the RL machinery, not a
result). The record holds the sampled training accuracy, the share of zero-variance groups and the entropy by
quarter of the GRPO run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import yaml
from transformers import TrainerCallback

from embodied_r.config import load_params
from embodied_r.data.records import append_jsonl, write_jsonl
from embodied_r.evaluation.generate import EvalResult, evaluate_model
from embodied_r.evaluation.generate import compare as compare_results
from embodied_r.hashing import sha256_file, short_hash
from embodied_r.rewards import build_reward_funcs
from embodied_r.training.dataset import read_training_rows
from embodied_r.training.grpo import train_grpo
from embodied_r.training.supervised import cold_start_examples, train_supervised

ROOT = Path(__file__).resolve().parents[1]


def parse_value(text: str):
    return yaml.safe_load(text)


def score(model: str, rows, params, label: str, keep_dir: Path | None = None) -> EvalResult:
    """``model`` decoded greedily on ``rows`` with the params' evaluation settings; prints a one-line summary.
    ``keep_dir`` (default ``.cache/evaluation/``): where the completions are kept as they are generated."""
    ev = params.evaluation
    started = time.perf_counter()
    result = evaluate_model(
        model, rows, max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size, precision=ev.precision,
        answer_mode=params.rewards.accuracy_mode, bootstrap_samples=ev.bootstrap_samples, seed=ev.seed,
        progress=False, keep_dir=keep_dir or ROOT / ".cache" / "evaluation",  # an interrupted pass resumes
    )  # fmt: skip
    result = result.model_copy(
        update={"settings": {**result.settings, "seconds": round(time.perf_counter() - started, 1)}}
    )
    out = summary(result)
    ci = out["ci95"]
    print(
        f"{label:>6}: pooled {out['pooled']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] format {out['format']:.2f} "
        f"tokens {out['tokens']:.1f} ({out['seconds']} s{', read back' if out['reused_rows'] else ''})  "
        f"{out['per_category']}",
        flush=True,
    )
    if out["answer_shares"] is not None:  # multiple-choice rows: is the accuracy more than the letter prior?
        shares = {k: round(v, 3) for k, v in out["answer_shares"].items()}
        print(f"        letters given {shares}; the best constant letter scores {out['constant_answer']:.3f}")
    return result


def summary(result: EvalResult) -> dict:
    """The figures of a score the log keeps (``seconds``: the scoring's wall time, when it was timed;
    ``reused_rows``: completions read back from an earlier pass, not generated)."""
    agg = result.aggregate
    return {
        "pooled": agg["pooled_accuracy"],
        "ci95": agg["pooled_accuracy_ci95"],
        "format": agg["format_compliance"],
        "tokens": agg["mean_completion_tokens"],
        "per_category": {c: round(v["accuracy"], 3) for c, v in agg["per_category"].items()},
        "answer_shares": agg["answer_shares"],
        "constant_answer": agg["constant_answer_accuracy"],
        "seconds": result.settings.get("seconds"),
        "reused_rows": result.settings.get("reused_rows", 0),
    }


class LogHistory(TrainerCallback):
    """Keeps every GRPO log entry (the final model folder has no ``trainer_state.json``)."""

    def __init__(self) -> None:
        self.entries: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "reward" in logs:
            self.entries.append(dict(logs))


def by_quarter(entries: list[dict], keys: tuple[str, ...]) -> dict[str, list[float | None]]:
    """Mean of each key over each quarter of the logged steps (None where a quarter logged nothing)."""
    out: dict[str, list[float | None]] = {}
    n = len(entries)
    for key in keys:
        quarters = []
        for q in range(4):
            values = [e[key] for e in entries[q * n // 4 : (q + 1) * n // 4] if e.get(key) is not None]
            quarters.append(round(sum(values) / len(values), 3) if values else None)
        out[key] = quarters
    return out


def compare(before: EvalResult, after: EvalResult, trained: set[str], *, n: int = 1000, seed: int = 0) -> dict:
    """``after`` against ``before`` on the same test questions.

    ``gain`` and ``gain_ci95``: the mean per-question difference and its paired bootstrap interval (the same
    questions resampled for both models: tighter than comparing two separate intervals). ``subsets``: with
    ``trained`` categories given, each model's accuracy and bootstrap interval, and the paired gain, on the
    questions of the trained and of the held-out categories (:meth:`EvalResult.subset`).
    """
    paired = compare_results(before, after, bootstrap_samples=n, seed=seed)
    out: dict = {"gain": paired["paired_delta"], "gain_ci95": paired["paired_delta_ci95"]}
    if trained:
        held_out = {s["category"] for s in after.per_sample} - trained
        out["subsets"] = {}
        for name, categories in (("trained", trained), ("held_out", held_out)):
            parts = {"before": before.subset(categories), "after": after.subset(categories)}
            if parts["before"] is None or parts["after"] is None:
                continue
            entry: dict = {"n": parts["after"].aggregate["n"]}
            for label, part in parts.items():
                entry[label] = part.aggregate["pooled_accuracy"]
                entry[f"{label}_ci95"] = part.aggregate["pooled_accuracy_ci95"]
            gain = compare_results(parts["before"], parts["after"], bootstrap_samples=n, seed=seed)
            entry["gain"], entry["gain_ci95"] = gain["paired_delta"], gain["paired_delta_ci95"]
            out["subsets"][name] = entry
    return out


def describe_subset(name: str, entry: dict) -> str:
    """One line for a subset of :func:`compare`: both models' accuracy and intervals, the paired gain."""
    lo, hi = (100 * v for v in entry["gain_ci95"])
    return (
        f"  {name} tasks (n={entry['n']}): {entry['before']:.3f} [{entry['before_ci95'][0]:.3f}, "
        f"{entry['before_ci95'][1]:.3f}] -> {entry['after']:.3f} [{entry['after_ci95'][0]:.3f}, "
        f"{entry['after_ci95'][1]:.3f}], gain {100 * entry['gain']:+.1f} points [{lo:+.1f}, {hi:+.1f}]"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", default=None, help="data_dir (default: the params')")
    parser.add_argument("-S", "--set", action="append", default=[], help="KEY=VALUE override (repeatable)")
    parser.add_argument("--tag", default="", help="a name for this recipe in the log")
    parser.add_argument("--sft", action="store_true", help="also train and score the SFT baseline")
    parser.add_argument("--no-grpo", action="store_true")
    parser.add_argument("--categories", default="", help="comma-separated tasks to keep (training and test)")
    parser.add_argument(
        "--train-categories", default="", help="comma-separated tasks to train on (the test keeps every task)"
    )
    parser.add_argument("--train-limit", type=int, default=0, help="train on the first N training rows only")
    parser.add_argument("--score-train", action="store_true", help="also score each model on its training rows")
    parser.add_argument("--work", default=str(ROOT / ".cache" / "learning"), help="where models are trained and kept")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "out" / "learning.jsonl"), help="appends a record")
    parser.add_argument("--keep-dir", default=None, help="where test completions are kept (default .cache/evaluation)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)

    overrides = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}
    params = load_params(ROOT / args.params, overrides)
    data = ROOT / (args.data or params.data_dir) / "training_set"
    pointer = ROOT / (args.data or params.data_dir) / "models" / "base_lm.json"
    base = str(ROOT / json.loads(pointer.read_text())["path"])  # the pointer names the model relative to the root
    test_rows = read_training_rows(data / "test.jsonl")
    all_train_rows = train_rows = read_training_rows(data / "train.jsonl")
    if args.categories:
        keep = set(args.categories.split(","))
        unknown = keep - {row.category for row in train_rows} - {row.category for row in test_rows}
        if unknown:
            parser.error(f"--categories: {sorted(unknown)} not in {data}")
        train_rows = [row for row in train_rows if row.category in keep]
        test_rows = [row for row in test_rows if row.category in keep]
    if args.train_categories:
        keep = set(args.train_categories.split(","))
        unknown = keep - {row.category for row in train_rows}
        if unknown:
            parser.error(f"--train-categories: {sorted(unknown)} not in {data / 'train.jsonl'}")
        train_rows = [row for row in train_rows if row.category in keep]
    if args.train_limit:
        train_rows = train_rows[: args.train_limit]
    record: dict = {
        "tag": args.tag, "overrides": overrides, "categories": args.categories,
        "train_categories": args.train_categories, "train_limit": args.train_limit,
        "train_rows": len(train_rows), "test_rows": len(test_rows),
    }  # fmt: skip
    print(f"{args.tag or 'recipe'}: {len(train_rows)} train rows, {len(test_rows)} test rows; {overrides}", flush=True)

    work = Path(args.work)
    keep = Path(args.keep_dir) if args.keep_dir else None
    subset = short_hash(json.dumps([args.categories, args.train_categories, args.train_limit]))
    train_path = work / f"train-{subset}.jsonl"
    write_jsonl(train_path, train_rows)
    cs = params.cold_start
    model = base
    scores: dict[str, EvalResult] = {}  # by model (and "_train" for --score-train)
    if cs.enabled:
        key = short_hash(json.dumps([cs.model_dump(), base]), sha256_file(data / "train.jsonl"))
        out = work / f"warm-{key}"
        started = time.perf_counter()
        if not (out / "final").is_dir():
            # always from the whole training split, so every recipe on the same data shares one warm start
            examples = cold_start_examples(all_train_rows, cs)
            train_supervised(base, examples, out, cs, purpose="cold_start")
        model = str(out / "final")
        record["cold_start_s"] = round(time.perf_counter() - started, 1)
        scores["warm"] = score(model, test_rows, params, "warm", keep)
        if args.score_train:
            scores["warm_train"] = score(model, train_rows, params, "warm@train", keep)

    if args.sft:
        from embodied_r.training.traces import reasoning_trace_examples

        sft = params.sft
        out = work / f"sft-{short_hash(json.dumps([sft.model_dump(), base]), sha256_file(train_path))}"
        started = time.perf_counter()
        if not (out / "final").is_dir():
            train_supervised(base, reasoning_trace_examples(train_rows, sft.answer), out, sft, purpose="sft")
        record["sft_s"] = round(time.perf_counter() - started, 1)
        scores["sft"] = score(str(out / "final"), test_rows, params, "sft", keep)

    if not args.no_grpo:
        out = work / f"grpo-{short_hash(json.dumps([record['overrides'], args.tag, time.time()]))}"
        funcs, names = build_reward_funcs(params.rewards, policy_model_path=base)
        history = LogHistory()
        started = time.perf_counter()
        outcome = train_grpo(
            model, train_path, out, params.grpo, funcs, names, params.rewards.schedule, resume=False,
            callbacks=[history],
        )  # fmt: skip
        record["grpo_s"] = round(time.perf_counter() - started, 1)
        record["grpo_s_per_step"] = round(outcome.seconds_per_step, 2)
        record["grpo_final_metrics"] = outcome.metrics
        record["grpo_by_quarter"] = by_quarter(
            history.entries,
            ("rewards/accuracy/mean", "rewards/format/mean", "frac_reward_zero_std", "entropy",
             "dynamic_sampling/draws", "dynamic_sampling/zero_std_trained",
             "flat_batch_skipped"),  # entropy: over the steps that trained
        )  # fmt: skip
        print(f"  by quarter of the run: {record['grpo_by_quarter']}", flush=True)
        scores["grpo"] = score(outcome.final_model_path, test_rows, params, "grpo", keep)
        if args.score_train:
            scores["grpo_train"] = score(outcome.final_model_path, train_rows, params, "grpo@train", keep)
        if "warm" in scores:
            trained = set(args.train_categories.split(",")) if args.train_categories else set()
            paired = compare(scores["warm"], scores["grpo"], trained, n=params.evaluation.bootstrap_samples,
                             seed=params.evaluation.seed)  # fmt: skip
            record["gain"], record["gain_ci95"] = paired["gain"], paired["gain_ci95"]
            lo, hi = (100 * v for v in paired["gain_ci95"])
            print(f"  gain over warm start: {100 * record['gain']:+.1f} points, paired 95% interval [{lo:+.1f}, "
                  f"{hi:+.1f}]", flush=True)  # fmt: skip
            for name, entry in paired.get("subsets", {}).items():
                record[f"{name}_subset"] = entry
                print(describe_subset(name, entry), flush=True)

    record.update({label: summary(result) for label, result in scores.items()})
    append_jsonl(Path(args.out), record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
