"""Supervised fine-tuning of the reasoning LM with TRL's ``SFTTrainer``: the format cold start and the SFT baseline.

Two uses, one trainer:

* **Cold start** (:func:`format_warmup_examples`; not in the paper, whose 3B LM already follows the format): a
  short warm-up that teaches only the output contract — a fixed, neutral ``<think>`` and an ``<answer>`` letter
  drawn uniformly at random from the row's choices. No answer is supervised, so whatever GRPO adds afterwards is
  the RL's. A 135M model otherwise spends its whole CPU budget discovering the tags.
* **SFT baseline** (the paper's RQ7; :mod:`embodied_r.training.traces`): the same LM fine-tuned on templated
  reasoning traces that end in the correct letter.

Examples are prompt/completion strings: the prompt is the row's chat prompt rendered with the tokenizer's chat
template and its generation prompt (with the ``<think>`` prefill when ``think_prefill`` is on, so the model learns
to continue exactly where GRPO and evaluation start it), the completion is the assistant turn; the loss is on the
completion only and TRL appends the end-of-turn token. :func:`train_supervised` saves ``output_dir/final`` with
the tokenizer (its template keeps the prefill) and ``supervised_training.json``.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict
from transformers import TrainerCallback

from embodied_r.data.records import parse_choices
from embodied_r.training.checkpoints import CompleteCheckpointCallback, last_complete_checkpoint, run_lock
from embodied_r.training.common_prefix import MIN_SHARED_TOKENS, batch_prefix_length, hidden_after_common_prefix
from embodied_r.training.config import (
    NEUTRAL_THINK,
    THINK_PREFILL,
    AnswerForm,
    ColdStartConfig,
    ColdStartLetters,
    SFTConfig,
    SupervisedConfig,
    resolve_bf16,
)
from embodied_r.training.progress import use_quiet_progress
from embodied_r.training.rows import TrainingRow

log = logging.getLogger(__name__)

#: Written next to the weights of a supervised model (read by evaluation and GRPO for the prefill).
SUPERVISED_TRAINING_FILE = "supervised_training.json"


class SupervisedOutcome(BaseModel):
    """What :func:`train_supervised` did."""

    model_config = ConfigDict(frozen=True)

    final_model_path: str
    global_step: int
    resumed_from: str | None
    train_runtime_s: float
    examples: int
    losses: list[tuple[int, float]]
    final_loss: float | None


def format_warmup_examples(
    rows: Sequence[TrainingRow],
    *,
    n: int,
    seed: int,
    think_text: str = NEUTRAL_THINK,
    letters: ColdStartLetters = "balanced",
    answer: AnswerForm = "letter",
) -> list[dict[str, Any]]:
    """``n`` cold-start examples: rows cycled in a seeded order, each with a letter drawn uniformly from its choices.

    Numeric rows (no choices) are skipped. The letter is independent of the row, so nothing about the answer is
    learnt. With ``letters="balanced"`` each example takes, among its row's letters, one used least so far (ties
    drawn at random): every run of examples, hence every step trained in order, holds each letter about equally
    often. With ``letters="every_option"`` each row in that order gives one example per option (letters in a
    seeded order), consecutively, until ``n``: the model sees the same question answered every way, so it learns
    no preference per question either. With ``answer="option_text"`` the ``<answer>`` holds the drawn option's
    text instead of its letter.

    >>> from embodied_r.training.rows import TrainingRow
    >>> row = TrainingRow(question_id="q", prompt=[{"role": "user", "content": "Q"}], solution="B", question="Q",
    ...                   choices=["A", "B"], category="c", data_source="s", scene_name="x", split="train",
    ...                   prompt_tokens=1)
    >>> ex = format_warmup_examples([row], n=1, seed=0)[0]
    >>> ex["completion"].startswith("<think>") and "</think>\\n<answer>" in ex["completion"]
    True
    """
    choice_rows = [r for r in rows if r.choices]
    if not choice_rows:
        raise ValueError("the cold start needs multiple-choice rows; none were given")
    rng = random.Random(seed)
    order: list[TrainingRow] = []
    while len(order) < n:
        batch = list(choice_rows)
        rng.shuffle(batch)
        order.extend(batch)
    used: Counter[str] = Counter()
    picks: list[tuple[TrainingRow, str]] = []
    for row in order:
        if len(picks) >= n:
            break
        if letters == "every_option":
            picks.extend((row, letter) for letter in rng.sample(row.choices, len(row.choices)))
        elif letters == "balanced":
            picks.append((row, least_used(used, row.choices, rng.choice)))
        else:
            picks.append((row, rng.choice(row.choices)))
    return [
        {
            "question_id": row.question_id,
            "prompt": row.prompt,
            "completion": answer_completion(think_text, answer_content(row, letter, answer)),
            "target": None,
        }
        for row, letter in picks[:n]
    ]


def least_used(used: Counter[str], letters: Sequence[str], choose: Callable[[list[str]], str]) -> str:
    """A letter of ``letters`` used least so far in ``used`` (``choose`` picks among ties); counted in ``used``.

    >>> used = Counter({"A": 1})
    >>> least_used(used, ["A", "B"], min), dict(used)
    ('B', {'A': 1, 'B': 1})
    """
    fewest = min(used[letter] for letter in letters)
    letter = choose([c for c in letters if used[c] == fewest])
    used[letter] += 1
    return letter


def cold_start_examples(rows: Sequence[TrainingRow], cfg: ColdStartConfig) -> list[dict[str, Any]]:
    """The cold start's examples as ``cfg`` sets them (:func:`format_warmup_examples`)."""
    return format_warmup_examples(
        rows, n=cfg.examples, seed=cfg.seed, think_text=cfg.think_text, letters=cfg.letters, answer=cfg.answer
    )


def answer_content(row: TrainingRow, letter: str, answer: AnswerForm) -> str:
    """What ``<answer>`` holds for option ``letter`` of ``row``: the letter, or that option's text."""
    if answer == "letter":
        return letter
    text = parse_choices(row.question).get(letter)
    if text is None:
        raise ValueError(
            f"{row.question_id}: option {letter} has no text line in the question, so it cannot be answered by "
            "its text: set answer: letter"
        )
    return text.strip().rstrip(".")


def answer_completion(think: str, answer: str) -> str:
    """The assistant turn ``<think> … </think>\\n<answer> … </answer>`` (the R1 system prompt's own layout)."""
    return f"{THINK_PREFILL}{think}</think>\n<answer>{answer}</answer>"


def render_examples(examples: Sequence[dict[str, Any]], tokenizer: Any, think_prefill: bool) -> list[dict[str, str]]:
    """Prompt/completion strings for ``SFTTrainer``: the chat-templated prompt and the rest of the assistant turn.

    With ``think_prefill`` the template already ends in ``<think>``, so the completion continues after it.
    """
    rendered = []
    for example in examples:
        prompt = tokenizer.apply_chat_template(example["prompt"], add_generation_prompt=True, tokenize=False)
        completion = example["completion"]
        if think_prefill:
            if not completion.startswith(THINK_PREFILL):
                raise ValueError(f"{example.get('question_id')}: a prefilled completion must start with <think>")
            completion = completion[len(THINK_PREFILL) :]
        rendered.append({"prompt": prompt, "completion": completion})
    return rendered


def sft_arguments(cfg: SupervisedConfig, output_dir: str | Path, *, max_length: int) -> Any:
    """TRL's ``SFTConfig`` for ``cfg``: the batch geometry, precision, checkpoints, and the example order
    (``cfg.in_order()``: the examples as given, e.g. the cold start's balanced letters, else shuffled)."""
    from trl import SFTConfig as TrlSFTConfig

    per_device, accumulation = cfg.batch_geometry()
    return TrlSFTConfig(
        output_dir=str(output_dir),
        max_steps=cfg.max_steps,
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        lr_scheduler_type="linear",
        bf16=resolve_bf16(cfg.precision),  # type: ignore[arg-type]
        fp16=False,
        activation_checkpointing=False,
        max_length=max_length,  # never truncate: the prompt budget was enforced by the training set
        completion_only_loss=True,
        packing=False,
        logging_steps=1,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=None,  # one kept, rotated by CompleteCheckpointCallback once the new one is marked complete
        seed=cfg.seed,
        report_to="none",
        push_to_hub=False,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        train_sampling_strategy="sequential" if cfg.in_order() else "random",
    )


def train_supervised(
    model_path: str | Path,
    examples: Sequence[dict[str, Any]],
    output_dir: str | Path,
    cfg: SupervisedConfig,
    *,
    purpose: str,
    mlflow_run_id: str | None = None,
    resume: bool = True,
    trust_remote_code: bool = False,
) -> SupervisedOutcome:
    """Fine-tune the local model at ``model_path`` on ``examples`` (``prompt`` messages + ``completion`` text).

    Resumes from the last complete checkpoint in ``output_dir`` (one a kill left half-written is skipped, with a
    warning); logs ``<purpose>/loss`` per step into ``mlflow_run_id`` when given. The model ends in
    ``output_dir/final``. Holds ``output_dir``'s writer lock while it trains: a second writer is refused
    (:mod:`embodied_r.training.checkpoints`).
    """
    with run_lock(output_dir, f"{purpose} training"):
        return _train_supervised(
            model_path, examples, output_dir, cfg, purpose=purpose, mlflow_run_id=mlflow_run_id, resume=resume,
            trust_remote_code=trust_remote_code,
        )  # fmt: skip


def _train_supervised(
    model_path: str | Path,
    examples: Sequence[dict[str, Any]],
    output_dir: str | Path,
    cfg: SupervisedConfig,
    *,
    purpose: str,
    mlflow_run_id: str | None,
    resume: bool,
    trust_remote_code: bool,
) -> SupervisedOutcome:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, set_seed

    from embodied_r.training.config import GrpoTrainingConfig
    from embodied_r.training.grpo import load_tokenizer

    set_seed(cfg.seed)
    output_dir = Path(output_dir)
    last_checkpoint = last_complete_checkpoint(output_dir) if resume else None
    tokenizer = load_tokenizer(
        model_path, GrpoTrainingConfig(think_prefill=cfg.think_prefill, trust_remote_code=trust_remote_code)
    )
    dataset = Dataset.from_list(render_examples(examples, tokenizer, cfg.think_prefill))
    longest = max(len(tokenizer(e["prompt"] + e["completion"]).input_ids) for e in dataset) + 1
    args = sft_arguments(cfg, output_dir, max_length=longest)
    model = AutoModelForCausalLM.from_pretrained(
        str(model_path), dtype=torch.float32, trust_remote_code=trust_remote_code, local_files_only=True
    )
    trainer = completion_only_trainer()(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    use_quiet_progress(trainer, purpose.replace("_", " "))
    trainer.add_callback(CompleteCheckpointCallback(save_total_limit=1))
    if mlflow_run_id is not None:
        trainer.add_callback(MlflowLossCallback(mlflow_run_id, purpose))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = trainer.train(resume_from_checkpoint=last_checkpoint)

    final = output_dir / "final"
    trainer.save_model(str(final))
    losses = [(int(e["step"]), float(e["loss"])) for e in trainer.state.log_history if "loss" in e]
    record = {
        "purpose": purpose,
        "config": cfg.model_dump(),
        "think_prefill": THINK_PREFILL if cfg.think_prefill else None,
        "examples": len(examples),
    }
    (final / SUPERVISED_TRAINING_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
    return SupervisedOutcome(
        final_model_path=str(final),
        global_step=trainer.state.global_step,
        resumed_from=last_checkpoint,
        train_runtime_s=float(result.metrics.get("train_runtime", 0.0)),
        examples=len(examples),
        losses=losses,
        final_loss=losses[-1][1] if losses else None,
    )


def shared_prefix_length(inputs: dict[str, Any], kept: torch.Tensor) -> int:
    """Tokens at the start that every row of the batch shares and that carry no label (0 = nothing to share).

    Only plain batches qualify: input ids and a 2-D attention mask, nothing else (no packing, no position ids).
    """
    if set(inputs) != {"input_ids", "attention_mask"} or inputs["input_ids"].size(0) < 2:
        return 0
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    if mask.dim() != 2:
        return 0
    n = batch_prefix_length(ids, mask)
    # kept[:, t] says position t predicts a label: its hidden state is needed, so the prefix ends before it.
    labelled = kept.any(0)
    if labelled.any():
        n = min(n, int(labelled.long().argmax()))
    return n if n >= MIN_SHARED_TOKENS else 0


def completion_only_trainer() -> type:
    """``SFTTrainer`` that projects only the supervised positions through the LM head.

    TRL's fused LM head scores *every* position off CUDA (in fp32, to avoid recompilation on other accelerators);
    here almost every position is prompt, whose labels are -100. In one process the loss is computed from the
    backbone's hidden states at the completion positions only — the same token-mean negative log-likelihood — which
    makes a cold-start step several times faster on a CPU. The prompt start that every row of a micro-batch shares
    (system prompt, role, video preamble) is run once for the micro-batch (:mod:`embodied_r.training.common_prefix`).
    Wrapped models (DDP, DeepSpeed) use TRL's own loss.
    """
    from trl import SFTTrainer

    class CompletionOnlySFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # type: ignore[override]
            wrapped = model is not self.accelerator.unwrap_model(model)
            if wrapped or return_outputs or self.aux_loss_enabled or "labels" not in inputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs["labels"][:, 1:]
            kept = labels != -100
            backbone_inputs = {k: v for k, v in inputs.items() if k not in ("labels", "completion_mask")}
            shared = shared_prefix_length(backbone_inputs, kept)
            with self.accelerator.autocast():  # accelerate autocasts model.forward, not the backbone called here
                if shared:  # the prompt start all rows share, run once (same loss and gradients)
                    hidden = hidden_after_common_prefix(
                        model.base_model, backbone_inputs["input_ids"], backbone_inputs["attention_mask"], shared
                    )[:, :-1]
                    labels, kept = labels[:, shared:], kept[:, shared:]
                else:
                    hidden = model.base_model(**backbone_inputs, use_cache=False).last_hidden_state[:, :-1]
                logits = model.get_output_embeddings()(hidden[kept]).float()
            targets = labels[kept]
            count = kept.sum() if num_items_in_batch is None else num_items_in_batch
            loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum") / torch.as_tensor(count).clamp(
                min=1
            )
            mode = "train" if model.training else "eval"
            with torch.no_grad():
                accuracy = (logits.argmax(-1) == targets).float().mean() if targets.numel() else torch.tensor(0.0)
            self._metrics[mode]["mean_token_accuracy"].append(accuracy.item())
            return loss

    return CompletionOnlySFTTrainer


class MlflowLossCallback(TrainerCallback):
    """Per-step loss, learning rate and grad norm into an existing MLflow run as ``<purpose>/<name>``."""

    def __init__(self, run_id: str, purpose: str) -> None:
        self.run_id = run_id
        self.purpose = purpose

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if not logs or not state.is_world_process_zero:
            return
        import mlflow
        from mlflow.entities import Metric

        metrics = [
            Metric(f"{self.purpose}/{key}", float(value), 0, state.global_step)
            for key, value in logs.items()
            if key in ("loss", "learning_rate", "grad_norm", "mean_token_accuracy") and value is not None
        ]
        if metrics:
            mlflow.MlflowClient().log_batch(self.run_id, metrics=metrics)


__all__ = [
    "NEUTRAL_THINK",
    "SUPERVISED_TRAINING_FILE",
    "AnswerForm",
    "ColdStartConfig",
    "MlflowLossCallback",
    "SFTConfig",
    "SupervisedConfig",
    "SupervisedOutcome",
    "answer_completion",
    "answer_content",
    "cold_start_examples",
    "completion_only_trainer",
    "format_warmup_examples",
    "render_examples",
    "train_supervised",
]
