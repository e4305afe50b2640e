"""Command-line entry of GRPO training, for one process or many (``torchrun`` / ``accelerate launch``).

One process (CPU or one GPU)::

    python -m embodied_r.training.launch --model MODEL_DIR --rows train.jsonl --out runs/grpo \\
        --config grpo.yaml --rewards rewards.yaml [--mlflow-run-id RUN_ID]

``--config`` holds :class:`~embodied_r.training.config.GrpoTrainingConfig` fields (defaults: the paper's),
``--rewards`` :class:`~embodied_r.rewards.RewardsConfig` fields (the reward set, its judge and the weight
schedule); a few flags (``--max-steps``, ``--num-generations`` …) override the config for quick runs.
A single process holds ``OUT/writer.lock`` while it trains, so a second one into the same ``--out`` is refused;
launched processes (``LOCAL_RANK`` set) leave the lock to whoever launched them (the ``grpo_lm`` asset holds it
around :func:`run_launched`).

Several processes, plain DDP (one process per GPU; on CPU, gloo — this is what the tests run)::

    torchrun --nproc_per_node 8 -m embodied_r.training.launch --model ... --rows ... --out ...

``accelerate launch`` with the project's configs (``configs/accelerate/``)::

    accelerate launch --config_file configs/accelerate/ddp.yaml   -m embodied_r.training.launch ...
    accelerate launch --config_file configs/accelerate/zero3.yaml -m embodied_r.training.launch ...

ZeRO-3 shards parameters, gradients and optimizer state: the paper's full fine-tune of a 3B LM in fp32 master
weights with AdamW (~48 GB of state) does not fit a 40 GB A800 under plain DDP. (On CPU, use ``torchrun``:
``accelerate launch --cpu --num_processes 2`` silently runs a single process.)

Generation with vLLM on GPUs (``use_vllm: true`` in ``--config``; vLLM must be installed):

* ``vllm_mode: colocate`` — each training process runs vLLM on its own GPU, sharing memory
  (``vllm_gpu_memory_utilization``, e.g. 0.3); nothing else to start.
* ``vllm_mode: server`` — dedicate GPUs to generation: start ``CUDA_VISIBLE_DEVICES=7 trl vllm-serve --model
  MODEL_DIR`` first, then train on the other GPUs (``CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6 accelerate launch
  --num_processes 7 ...``) with ``vllm_server_base_url: http://HOST:8000``; the weights are pushed to the
  server after each step.

Outputs: ``OUT/final`` (model + tokenizer), ``OUT/checkpoint-*`` (the last complete one resumed automatically
unless ``--no-resume``; one a kill left half-written is skipped), ``OUT/outcome.json`` (the
:class:`~embodied_r.training.grpo.TrainOutcome`, from rank 0) and ``OUT/launch_ranks/rank-<r>.json`` (each
process's rank and the world size the trainer saw).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

import yaml

from embodied_r.training.config import GrpoTrainingConfig

log = logging.getLogger(__name__)

#: Flags that override fields of the --config file.
OVERRIDES: dict[str, type] = {
    "max_steps": int,
    "num_generations": int,
    "prompts_per_step": int,
    "per_device_batch_size": int,
    "max_completion_length": int,
    "precision": str,
    "save_steps": int,
    "seed": int,
}


def _read_mapping(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    data = yaml.safe_load(Path(path).read_text())  # YAML is a superset of JSON
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: expected a mapping")
    return data


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m embodied_r.training.launch", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="local model folder")
    parser.add_argument("--rows", required=True, help="training rows (TrainingRow JSONL)")
    parser.add_argument("--out", required=True, help="output folder (checkpoints, final model)")
    parser.add_argument("--eval-rows", help="evaluation rows (TrainingRow JSONL)")
    parser.add_argument("--tokenizer", help="tokenizer folder, when not the model's")
    parser.add_argument("--judge-model", help="the frozen reference LM of judge backend policy_init (default: --model)")
    parser.add_argument("--config", help="YAML/JSON of GrpoTrainingConfig fields")
    parser.add_argument("--rewards", help="YAML/JSON of embodied_r.rewards.RewardsConfig fields")
    parser.add_argument("--mlflow-run-id", help="log into this existing MLflow run (MLFLOW_TRACKING_URI: the store)")
    parser.add_argument("--no-resume", action="store_true", help="ignore checkpoints in --out")
    for name, kind in OVERRIDES.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, dest=name, help=f"override {name}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Train with GRPO as the command line says; every process of a distributed launch runs this."""
    args = parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s rank{rank} %(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from embodied_r.runtime import tune_process

    tune_process()  # the allocator and threads the launching stage exported (embodied_r.runtime), before torch

    from embodied_r.rewards import RewardsConfig, build_reward_funcs
    from embodied_r.training.grpo import train_grpo

    fields = _read_mapping(args.config)
    fields.update({name: getattr(args, name) for name in OVERRIDES if getattr(args, name) is not None})
    cfg = GrpoTrainingConfig(**fields)
    rewards_cfg = RewardsConfig(**_read_mapping(args.rewards))
    funcs, names = build_reward_funcs(rewards_cfg, policy_model_path=args.judge_model or args.model)

    outcome = train_grpo(
        args.model,
        args.rows,
        args.out,
        cfg,
        funcs,
        names,
        rewards_cfg.schedule,
        eval_rows_path=args.eval_rows,
        mlflow_run_id=args.mlflow_run_id,
        resume=not args.no_resume,
        tokenizer_path=args.tokenizer,
    )

    out = Path(args.out)
    ranks = out / "launch_ranks"
    ranks.mkdir(parents=True, exist_ok=True)
    (ranks / f"rank-{rank}.json").write_text(json.dumps({"rank": rank, "world_size": outcome.world_size}))
    if rank == 0:
        (out / "outcome.json").write_text(outcome.model_dump_json(indent=2))
        log.info("done: %s", outcome.model_dump_json())
    return 0


def launch_argv(cfg: GrpoTrainingConfig) -> list[str]:
    """The launcher command for ``cfg`` (everything before ``-m embodied_r.training.launch``)."""
    import sys

    if cfg.launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={cfg.nproc_per_node}"]
    if cfg.launcher == "accelerate":
        argv = [sys.executable, "-m", "accelerate.commands.launch", f"--num_processes={cfg.nproc_per_node}"]
        if cfg.accelerate_config:
            argv.append(f"--config_file={cfg.accelerate_config}")
        return argv
    raise ValueError(f"launcher {cfg.launcher!r} runs in-process; there is no command to launch")


def run_launched(
    cfg: GrpoTrainingConfig,
    rewards: Any,
    *,
    model: Path,
    rows: Path,
    out: Path,
    eval_rows: Path | None = None,
    judge_model: Path | None = None,
    mlflow_run_id: str | None = None,
    tracking_uri: str | None = None,
    cwd: Path | None = None,
) -> Any:
    """Train in ``cfg.nproc_per_node`` processes started by ``cfg.launcher``; returns rank 0's TrainOutcome.

    The configs go to ``out/launch_config/`` as YAML; the processes log into ``mlflow_run_id``. A failed
    launch raises with the tail of its output.
    """
    import subprocess

    from embodied_r.training.grpo import TrainOutcome

    config_dir = out / "launch_config"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "grpo.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=True))
    (config_dir / "rewards.yaml").write_text(yaml.safe_dump(rewards.model_dump(mode="json"), sort_keys=True))
    (out / "outcome.json").unlink(missing_ok=True)
    argv = [
        *launch_argv(cfg),
        "-m", "embodied_r.training.launch",
        "--model", str(model), "--rows", str(rows), "--out", str(out),
        "--config", str(config_dir / "grpo.yaml"), "--rewards", str(config_dir / "rewards.yaml"),
    ]  # fmt: skip
    if eval_rows is not None:
        argv += ["--eval-rows", str(eval_rows)]
    if judge_model is not None:
        argv += ["--judge-model", str(judge_model)]
    if mlflow_run_id is not None:
        argv += ["--mlflow-run-id", mlflow_run_id]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    log.info("launching: %s", " ".join(argv))
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not (out / "outcome.json").is_file():
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise RuntimeError(f"{cfg.launcher} training failed (exit {proc.returncode}):\n{tail}")
    return TrainOutcome.model_validate_json((out / "outcome.json").read_text())


if __name__ == "__main__":
    # record: a failing process writes its traceback to the launcher's error file, and the launcher's summary —
    # the end of the output run_launched reports — names the cause instead of "To enable traceback see ...".
    from torch.distributed.elastic.multiprocessing.errors import record

    raise SystemExit(record(main)())
