"""The embedded synthetic egocentric world: procedural rooms, camera trajectories, videos and questions.

``generate_embedded_dataset`` builds ``cfg.scenes × cfg.videos_per_scene`` videos. For each video it
writes ``videos/{video_id}.mp4`` (rendered by ``render.py``) and ``ground_truth/{video_id}.json`` (scene,
intrinsics, per-frame poses, actions; see ``trajectory.build_ground_truth`` and the coordinate convention
in ``geometry.py``), and returns multiple-choice questions for the eight task categories (``questions/``).

Scenes, trajectories and questions are computed in the calling process in a fixed order; only rendering
runs in a process pool, so the output is byte-identical for a seed whatever the number of workers.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from embodied_r.config import SyntheticConfig
from embodied_r.data.records import DatasetBuild, write_json
from embodied_r.data.synthetic.questions import generate_questions
from embodied_r.data.synthetic.render import render_video
from embodied_r.data.synthetic.scene import make_scene
from embodied_r.data.synthetic.trajectory import build_ground_truth

logger = logging.getLogger(__name__)

__all__ = ["build_ground_truths", "generate_embedded_dataset"]


def build_ground_truths(cfg: SyntheticConfig) -> list[dict[str, Any]]:
    """Ground truth of every video, in ``(scene, video)`` order; pure function of the config."""
    gts = []
    for s in range(cfg.scenes):
        scene_name = f"scene_{s:03d}"
        rng = np.random.default_rng([cfg.seed, s])
        lo, hi = cfg.objects_per_scene
        scene = make_scene(scene_name, rng, int(rng.integers(lo, hi + 1)))
        for v in range(cfg.videos_per_scene):
            video_rng = np.random.default_rng([cfg.seed, s, v + 1])
            gts.append(
                build_ground_truth(
                    scene,
                    f"{scene_name}_v{v}",
                    width=cfg.width,
                    height=cfg.height,
                    fps=cfg.fps,
                    steps=cfg.steps_per_video,
                    frames_per_step=cfg.frames_per_step,
                    rng=video_rng,
                )
            )
    return gts


def _render_job(job: tuple[dict[str, Any], str]) -> str:
    gt, path = job
    cv2.setNumThreads(1)  # one OpenCV thread per worker process: the pool already uses the cores
    render_video(gt, Path(path))
    return gt["video_id"]


def _reset_signals() -> None:
    """Render workers take default signal handling, not the parent's (Dagster's run process installs an
    interrupt handler that would turn the pool's shutdown into tracebacks)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def generate_embedded_dataset(
    cfg: SyntheticConfig, out_dir: Path, *, workers: int | None = None, progress: bool = True
) -> DatasetBuild:
    """Generate the synthetic dataset under ``out_dir``; return its records and video paths.

    ``videos`` maps each ``video_id`` to ``videos/{video_id}.mp4``, relative to ``out_dir``. ``workers``
    defaults to ``min(2, os.cpu_count())``; the progress bar shows only on a terminal and when ``progress``.
    """
    out_dir = Path(out_dir)
    gts = build_ground_truths(cfg)
    videos: dict[str, str] = {}
    jobs = []
    for gt in gts:
        write_json(out_dir / "ground_truth" / f"{gt['video_id']}.json", gt)
        rel = f"videos/{gt['video_id']}.mp4"
        videos[gt["video_id"]] = rel
        jobs.append((gt, str(out_dir / rel)))
    records = generate_questions(gts, cfg.categories, cfg.questions_per_video, cfg.seed)

    n_workers = max(1, min(workers if workers is not None else min(2, os.cpu_count() or 1), len(jobs)))
    bar = tqdm(total=len(jobs), desc="render videos", unit="video", disable=not (progress and sys.stderr.isatty()))
    try:
        if n_workers == 1:
            for job in jobs:
                _render_job(job)
                bar.update()
        else:
            # spawn, not fork: the caller (a Dagster run, a test session) has threads, and forking a threaded
            # process can deadlock the children on locks held at fork time.
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(n_workers, initializer=_reset_signals) as pool:
                for _ in pool.imap_unordered(_render_job, jobs):
                    bar.update()
    finally:
        bar.close()
    logger.info("embedded dataset: %d videos, %d questions in %s", len(videos), len(records), out_dir)
    return DatasetBuild(records=records, videos=videos)
