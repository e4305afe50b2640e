"""Backend calls per perception mode on an ingested dataset (the demo's by default).

    python benchmarks/perception.py [--root .]

Runs the configured backend (the oracle by default) in ``per_question`` (the paper) and ``per_video``
mode, each with an empty cache, then once more per mode with the cache warm; prints the calls, cache
hits and wall time of each. Needs ``raw_videos`` and ``keyframes`` materialized (``make demo`` or
``dvc repro keyframes``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from embodied_r.config import load_params
from embodied_r.data.ingest import read_videos
from embodied_r.data.records import read_records
from embodied_r.layout import Layout
from embodied_r.perception.cache import DescriptionCache
from embodied_r.perception.describe import describe_samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="project root (holds params.yaml and data/)")
    args = parser.parse_args()
    root = Path(args.root).resolve()
    params = load_params(root / "params.yaml")
    layout = Layout(root=root, data_dir=params.data_dir)
    records = read_records(layout.records)
    videos = read_videos(layout.raw)
    gt = layout.raw / "ground_truth"
    print(f"{len(records)} questions over {len(videos)} videos; backend {params.perception.backend}")
    print(f"{'mode':<13} {'cache':<5} {'calls':>6} {'hits':>6} {'samples':>8} {'seconds':>8}")
    for mode in ("per_question", "per_video"):
        cfg = params.perception.model_copy(update={"mode": mode})
        with tempfile.TemporaryDirectory() as cache_dir:
            cache = DescriptionCache(cache_dir)
            for state in ("cold", "warm"):
                start = time.perf_counter()
                outcome = describe_samples(
                    records,
                    keyframes_root=layout.keyframes,
                    videos=videos,
                    ground_truth_root=gt if gt.is_dir() else None,
                    cfg=cfg,
                    cache=cache,
                    progress=False,
                )
                seconds = time.perf_counter() - start
                s = outcome.stats
                print(
                    f"{mode:<13} {state:<5} {s['calls']:>6} {s['cache_hits']:>6} {len(outcome.samples):>8} "
                    f"{seconds:>8.2f}"
                )


if __name__ == "__main__":
    main()
