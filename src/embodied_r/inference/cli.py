"""``embodied-r ask``: one question about one video, answered by a trained model of the project.

Added to the library's parser by :func:`embodied_r.cli.build_parser` (no Dagster needed). Readable by default,
``--json`` for a program. A question the chain cannot answer (unreadable or too short video, unknown model alias,
a VLM server that does not answer, the oracle asked about a real video) is one paragraph on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import textwrap
from pathlib import Path

from embodied_r.inference.chain import Answer

#: The model ``ask`` uses unless ``--model`` names another.
DEFAULT_MODEL = "models:/{name}@champion"


def add_ask_command(sub: argparse._SubParsersAction) -> None:
    """The ``ask`` subcommand."""
    p = sub.add_parser(
        "ask",
        help="answer a question about a video with the trained model (key frames, perception, the LM)",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--video", required=True, help="the video file")
    p.add_argument("--question", required=True, help="the question's text")
    p.add_argument(
        "--option", action="append", default=[], help="an answer option, in letter order (repeat: A, B, ...)"
    )
    p.add_argument(
        "--model",
        default=None,
        help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model or a Hugging Face folder "
        "(default: models:/<tracking.registered_model>@champion)",
    )
    p.add_argument("--json", action="store_true", help="print the answer as JSON")
    p.set_defaults(func=cmd_ask)


def cmd_ask(args: argparse.Namespace) -> int:
    """Answer the question; print it readably or as JSON. Exit 2 with one paragraph when it cannot be answered."""
    from embodied_r.config import load_params
    from embodied_r.inference import Asker, InferenceError

    if args.verbose == 0:  # a failed question is one paragraph: not also each key frame's warning (-v shows them)
        logging.getLogger("embodied_r.perception").setLevel(logging.ERROR)
    root = Path(args.root).resolve()
    params = load_params(root / args.params)
    model = args.model or DEFAULT_MODEL.format(name=params.tracking.registered_model)
    try:
        answer = Asker(params, root, model).ask(Path(args.video), args.question, args.option)
    except InferenceError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False) if args.json else render_answer(answer))
    return 0


def render_answer(answer: Answer) -> str:
    """The answer for a terminal: the answer, the reasoning, the key frames and their descriptions, the timings."""
    if answer.letter:
        said = f"{answer.letter}. {answer.text}"
    else:
        said = answer.text or "(no answer could be read from the completion; see it below)"
    lines = [f"Answer: {said}", f"Model:  {answer.model}", ""]
    lines.append("Think:  " + (textwrap.shorten(answer.think, 600) if answer.think else "(none)"))
    if not answer.letter and not answer.text:
        lines.append("Completion: " + textwrap.shorten(answer.completion, 600))
    lines += ["", f"Key frames {answer.keyframe_indices}:"]
    for index, text in zip(answer.keyframe_indices, answer.descriptions, strict=True):
        lines.append("  " + textwrap.shorten(f"frame {index}: {text}", 150))
    timing = ", ".join(f"{stage} {seconds:.2f}" for stage, seconds in answer.seconds.items())
    lines += ["", f"Seconds: {timing}"]
    return "\n".join(lines)


__all__ = ["add_ask_command", "cmd_ask", "render_answer"]
