"""Benchmark: the embedded synthetic world — render time, question counts per category, the blind baseline.

Renders the world ``params.yaml`` describes (the demo's: 20 scenes × 4 videos = 80 videos) into a temporary
folder, timed; prints the questions per category and the accuracy of the text-only ("blind") heuristics, which
must stay at chance (cross-fitted: each heuristic is scored on the half it was not fitted on).

    .venv/bin/python benchmarks/synthetic.py                       # the demo world (target: 40 videos < 1 min)
    .venv/bin/python benchmarks/synthetic.py -S synthetic.scenes=40  # a larger one
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

from embodied_r.config import load_params
from embodied_r.data.synthetic import generate_embedded_dataset
from embodied_r.data.synthetic.blind_baseline import blind_baseline_accuracy

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("-S", "--set", action="append", default=[], help="KEY=VALUE override (repeatable)")
    args = parser.parse_args()
    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    cfg = load_params(ROOT / args.params, overrides).synthetic
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        build = generate_embedded_dataset(cfg, Path(tmp), progress=False)
        seconds = time.perf_counter() - started
        frames = cfg.steps_per_video * cfg.frames_per_step
    print(
        f"rendered {len(build.videos)} videos ({cfg.width}x{cfg.height}, ~{frames} frames each) in {seconds:.1f} s "
        f"({seconds / len(build.videos):.2f} s/video)"
    )
    counts = Counter(r.category for r in build.records)
    print(f"{len(build.records)} questions:")
    for category, n in sorted(counts.items()):
        print(f"  {category:22s} {n}")
    blind = blind_baseline_accuracy(build.records)
    chance = blind.pop("chance")["pooled"]
    print(f"blind (text-only) baselines, pooled accuracy (chance {chance:.3f}):")
    for name, result in blind.items():
        worst = max(result["per_category"].items(), key=lambda kv: kv[1])
        print(f"  {name:22s} {result['pooled']:.3f}   (highest category: {worst[0]} {worst[1]:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
