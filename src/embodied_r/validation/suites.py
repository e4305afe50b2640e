"""Great Expectations suites over the perception outputs.

Five named suites, each meant to be one blocking asset check:

==============  ==================  ============================================================
suite           table(s)            expectations
==============  ==================  ============================================================
keyframes       samples             at least one sample; question_id unique; key frames per
                                    sample within [min_keyframes, max_keyframes]; one
                                    description per key frame
descriptions    frames              observation not null and not blank; observation length within
                                    [min_description_chars, max_description_chars]; no refusal
                                    text in the raw VLM answer
actions         frames (+samples)   first frame has no action; parsed actions in the ten-action
                                    vocabulary; unparsable actions (None) on at most
                                    max_unparsable_action_share of the non-first frames overall
                                    (optionally also per sample)
answers         samples             answer is an option letter and among the sample's choices;
                                    choices are letters (multiple-choice samples only)
split           scene_splits        each scene in exactly one split; splits are train/val/test
==============  ==================  ============================================================

The tables are built by :func:`embodied_r.validation.frames.build_tables`. Everything runs in
one in-memory (ephemeral) GX context with a pandas data source: one validation per suite and
table, never per sample, no files and no analytics.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from embodied_r.perception.records import DescribedSample
from embodied_r.validation.config import ValidationConfig
from embodied_r.validation.frames import PerceptionTables, build_tables
from embodied_r.vocabulary import ACTIONS, LETTERS

if TYPE_CHECKING:
    import great_expectations as gx

logger = logging.getLogger(__name__)

#: The suites, in the order :func:`run_suites` runs them.
SUITE_NAMES: tuple[str, ...] = ("keyframes", "descriptions", "actions", "answers", "split")

#: One line per suite, for asset-check descriptions.
SUITE_DESCRIPTIONS: dict[str, str] = {
    "keyframes": "One row per question; key frames per sample within the clamp bounds; one description per key frame.",
    "descriptions": "Frame descriptions are non-empty, of bounded length, and not a refusal.",
    "actions": "Parsed actions are in the ten-action vocabulary; unparsable actions stay under the allowed share.",
    "answers": "The answer letter is among the sample's option letters.",
    "split": "Each scene is in exactly one split.",
}

#: Values longer than this are cut in failing examples.
MAX_VALUE_CHARS = 120

_SPLITS = ("train", "val", "test")
_GX_NAME = "embodied_r_perception"


class FailingExample(BaseModel):
    """One failing row: who it is (``key``, plus ``ids``) and the offending value."""

    model_config = ConfigDict(frozen=True)

    key: str = Field(description="question_id (or scene_name for the split suite).")
    ids: dict[str, str] = Field(default_factory=dict, description="Other identifying columns, e.g. frame_position.")
    value: str = Field(description="The offending value(s), rendered and cut to a readable length.")

    def __str__(self) -> str:
        ids = ", ".join(f"{name}={value}" for name, value in self.ids.items())
        return f"{self.key}{f' ({ids})' if ids else ''}: {self.value}"


class ExpectationOutcome(BaseModel):
    """The result of one GX expectation, flattened for Dagster metadata."""

    model_config = ConfigDict(frozen=True)

    expectation_type: str = Field(description="GX expectation type, e.g. expect_column_values_to_be_between.")
    description: str = Field(description="What the check means in the project's terms.")
    table: str = Field(description="Table validated: samples, frames or scene_splits.")
    column: str | None = Field(None, description="Column (or 'A, B' for a column pair); None for table checks.")
    success: bool
    element_count: int | None = Field(None, description="Rows in the expectation's domain (after row_condition).")
    missing_count: int | None = Field(None, description="Null rows in the domain; column-map checks skip them.")
    unexpected_count: int | None = None
    unexpected_percent: float | None = Field(None, description="Of the non-null rows in the domain, in percent.")
    observed_value: Any = Field(None, description="For aggregate expectations (e.g. a row count).")
    examples: list[FailingExample] = Field(default_factory=list, description="Up to max_failing_examples.")
    exception: str | None = Field(None, description="Error message if the expectation raised.")


class SuiteOutcome(BaseModel):
    """The result of one named suite: success and one :class:`ExpectationOutcome` per expectation."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    success: bool
    expectations: list[ExpectationOutcome]
    n_rows: dict[str, int] = Field(description="Rows of each table the suite validated.")
    seconds: float = Field(description="Wall time of the validation.")

    @property
    def failed(self) -> list[ExpectationOutcome]:
        """The expectations that did not pass."""
        return [outcome for outcome in self.expectations if not outcome.success]

    def summary(self) -> str:
        """One line, e.g. ``actions: FAILED 1 of 3 expectations (frames=100000 rows)``."""
        rows = ", ".join(f"{table}={n}" for table, n in self.n_rows.items())
        if self.success:
            return f"{self.name}: passed {len(self.expectations)} expectations ({rows} rows)"
        return f"{self.name}: FAILED {len(self.failed)} of {len(self.expectations)} expectations ({rows} rows)"

    def to_markdown(self) -> str:
        """A compact Markdown table: one row per expectation, failing examples inline."""
        lines = [
            f"**{self.name}** — {'passed' if self.success else 'FAILED'} ({self.description})",
            "",
            "| ok | check | expectation | column | unexpected | examples |",
            "|---|---|---|---|---|---|",
        ]
        for outcome in self.expectations:
            if outcome.unexpected_count is not None:
                percent = f" ({outcome.unexpected_percent:.2f}%)" if outcome.unexpected_percent is not None else ""
                checked = (
                    f"{(outcome.element_count or 0) - outcome.missing_count} non-null"
                    if outcome.missing_count
                    else outcome.element_count
                )
                unexpected = f"{outcome.unexpected_count} of {checked}{percent}"
            elif outcome.observed_value is not None:
                unexpected = f"observed {outcome.observed_value}"
            else:
                unexpected = ""
            examples = "; ".join(str(example) for example in outcome.examples)
            if outcome.exception:
                examples = f"error: {outcome.exception}"
            cells = [
                "✅" if outcome.success else "❌",
                outcome.description,
                outcome.expectation_type,
                outcome.column or "",
                unexpected,
                examples,
            ]
            lines.append("| " + " | ".join(_md_cell(cell) for cell in cells) + " |")
        return "\n".join(lines)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


@dataclass(frozen=True)
class _Part:
    """One GX suite over one table; a named suite has one or more parts."""

    table: str
    suite: gx.ExpectationSuite
    key_column: str
    context_columns: tuple[str, ...] = ()


def _import_gx() -> Any:
    """Import great_expectations with analytics off (the env var must precede the import)."""
    os.environ["GX_ANALYTICS_ENABLED"] = "False"
    import great_expectations

    return great_expectations


def _keyframes_parts(gx: Any, cfg: ValidationConfig) -> list[_Part]:
    gxe = gx.expectations
    suite = gx.ExpectationSuite(name="keyframes")
    suite.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=1, description="at least one sample"))
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="question_id", description="one sample per question"))
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeBetween(
            column="n_keyframes",
            min_value=cfg.min_keyframes,
            max_value=cfg.max_keyframes,
            description=f"key frames per sample within [{cfg.min_keyframes}, {cfg.max_keyframes}]",
        )
    )
    suite.add_expectation(
        gxe.ExpectColumnPairValuesToBeEqual(
            column_A="n_keyframes", column_B="n_frames", description="one description per key frame"
        )
    )
    return [_Part("samples", suite, key_column="question_id")]


def _descriptions_parts(gx: Any, cfg: ValidationConfig) -> list[_Part]:
    gxe = gx.expectations
    suite = gx.ExpectationSuite(name="descriptions")
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="observation", description="description present"))
    suite.add_expectation(
        gxe.ExpectColumnValuesToNotMatchRegex(column="observation", regex=r"^\s*$", description="description non-empty")
    )
    suite.add_expectation(
        gxe.ExpectColumnValueLengthsToBeBetween(
            column="observation",
            min_value=cfg.min_description_chars,
            max_value=cfg.max_description_chars,
            description=f"description length within [{cfg.min_description_chars}, {cfg.max_description_chars}] chars",
        )
    )
    if cfg.refusal_patterns:
        suite.add_expectation(
            gxe.ExpectColumnValuesToNotMatchRegexList(
                column="raw", regex_list=cfg.refusal_regexes(), description="no refusal text in the VLM answer"
            )
        )
    return [_Part("frames", suite, key_column="question_id", context_columns=("frame_position",))]


def _actions_parts(gx: Any, cfg: ValidationConfig) -> list[_Part]:
    from great_expectations.expectations.row_conditions import Column

    gxe = gx.expectations
    suite = gx.ExpectationSuite(name="actions")
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeNull(
            column="action", row_condition=Column("frame_position") == 0, description="first frame has no action"
        )
    )
    # Nulls are outside a column-map domain in GX, so this checks the parsed actions only.
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeInSet(
            column="action", value_set=list(ACTIONS), description="parsed actions in the ten-action vocabulary"
        )
    )
    suite.add_expectation(
        gxe.ExpectColumnValuesToNotBeNull(
            column="action",
            row_condition=Column("frame_position") > 0,
            mostly=1.0 - cfg.max_unparsable_action_share,
            description=f"unparsable actions on at most {cfg.max_unparsable_action_share:.0%} of non-first frames",
        )
    )
    parts = [_Part("frames", suite, key_column="question_id", context_columns=("frame_position",))]
    if cfg.max_unparsable_action_share_per_sample is not None:
        per_sample = gx.ExpectationSuite(name="actions_per_sample")
        per_sample.add_expectation(
            gxe.ExpectColumnValuesToBeBetween(
                column="unparsable_action_share",
                max_value=cfg.max_unparsable_action_share_per_sample,
                description=(
                    f"unparsable actions on at most {cfg.max_unparsable_action_share_per_sample:.0%} "
                    "of each sample's non-first frames"
                ),
            )
        )
        parts.append(_Part("samples", per_sample, key_column="question_id", context_columns=("n_non_first_frames",)))
    return parts


def _answers_parts(gx: Any, cfg: ValidationConfig) -> list[_Part]:
    from great_expectations.expectations.row_conditions import Column

    gxe = gx.expectations
    suite = gx.ExpectationSuite(name="answers")
    multiple_choice = Column("n_choices") > 0
    letters = "".join(LETTERS)
    suite.add_expectation(
        gxe.ExpectColumnValuesToMatchRegex(
            column="choices",
            regex=rf"^[{letters}](,[{letters}])*$",
            row_condition=multiple_choice,
            description="choices are option letters",
        )
    )
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeInSet(
            column="answer", value_set=list(LETTERS), row_condition=multiple_choice, description="answer is a letter"
        )
    )
    # answer_in_choices is None for numeric questions, and nulls are outside the domain.
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeInSet(
            column="answer_in_choices", value_set=[True], description="answer letter among the choices"
        )
    )
    return [_Part("samples", suite, key_column="question_id", context_columns=("answer", "choices"))]


def _split_parts(gx: Any, cfg: ValidationConfig) -> list[_Part]:
    gxe = gx.expectations
    suite = gx.ExpectationSuite(name="split")
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeUnique(column="scene_name", description="each scene in exactly one split")
    )
    suite.add_expectation(
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(_SPLITS), description="split is train/val/test")
    )
    return [_Part("scene_splits", suite, key_column="scene_name", context_columns=("split", "question_ids"))]


_BUILDERS: dict[str, Callable[[Any, ValidationConfig], list[_Part]]] = {
    "keyframes": _keyframes_parts,
    "descriptions": _descriptions_parts,
    "actions": _actions_parts,
    "answers": _answers_parts,
    "split": _split_parts,
}


def _render_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "None"
    text = repr(value) if isinstance(value, str) else str(value)
    if len(text) > MAX_VALUE_CHARS:
        length = f" ({len(value)} chars)" if isinstance(value, str) else ""
        text = text[: MAX_VALUE_CHARS - 1] + "…" + length
    return text


def _examples(result: dict[str, Any], part: _Part, domain_columns: list[str], limit: int) -> list[FailingExample]:
    """Failing rows from GX's ``partial_unexpected_index_list`` (dicts of domain + index columns)."""
    examples = []
    for row in (result.get("partial_unexpected_index_list") or [])[:limit]:
        if not isinstance(row, dict):
            continue
        ids = {name: str(row[name]) for name in part.context_columns if name in row and name not in domain_columns}
        values = {name: row[name] for name in domain_columns if name in row}
        if len(values) == 1:
            value = _render_value(next(iter(values.values())))
        else:
            value = ", ".join(f"{name}={_render_value(v)}" for name, v in values.items())
        examples.append(FailingExample(key=str(row.get(part.key_column, "?")), ids=ids, value=value))
    return examples


def _outcome(gx_result: Any, part: _Part, cfg: ValidationConfig) -> ExpectationOutcome:
    config = gx_result.expectation_config
    kwargs = config.kwargs
    if "column" in kwargs:
        domain_columns = [kwargs["column"]]
    elif "column_A" in kwargs:
        domain_columns = [kwargs["column_A"], kwargs["column_B"]]
    else:
        domain_columns = list(kwargs.get("column_list") or [])
    result = dict(gx_result.result or {})
    exception_info = gx_result.exception_info or {}
    exception = exception_info.get("exception_message") if exception_info.get("raised_exception") else None
    return ExpectationOutcome(
        expectation_type=config.type,
        description=config.description or config.type,
        table=part.table,
        column=", ".join(domain_columns) or None,
        success=bool(gx_result.success),
        element_count=result.get("element_count"),
        missing_count=result.get("missing_count"),
        unexpected_count=result.get("unexpected_count"),
        unexpected_percent=result.get("unexpected_percent"),
        observed_value=_plain(result.get("observed_value")),
        examples=_examples(result, part, domain_columns, cfg.max_failing_examples),
        exception=exception,
    )


def _plain(value: Any) -> Any:
    """JSON-friendly observed values (numpy scalars → Python)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)


class PerceptionValidator:
    """Runs the named suites on perception tables, in one ephemeral GX context.

    Create once and reuse: the context, data source and suites are built on first use.
    """

    def __init__(self, cfg: ValidationConfig | None = None) -> None:
        self.cfg = cfg or ValidationConfig()
        self._gx: Any = None
        self._batch_definitions: dict[str, Any] = {}
        self._parts: dict[str, list[_Part]] = {}

    def _setup(self) -> None:
        if self._gx is not None:
            return
        started = time.perf_counter()
        gx = _import_gx()
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        # In-memory stores, no data-docs site, no analytics, no progress bars in the Dagster logs.
        project_config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        )
        context = gx.get_context(mode="ephemeral", project_config=project_config)
        source = context.data_sources.add_pandas(_GX_NAME)
        for table in ("samples", "frames", "scene_splits"):
            asset = source.add_dataframe_asset(table)
            self._batch_definitions[table] = asset.add_batch_definition_whole_dataframe(f"{table}_all")
        self._parts = {name: builder(gx, self.cfg) for name, builder in _BUILDERS.items()}
        self._context = context
        self._gx = gx
        logger.debug("GX ephemeral context ready in %.2fs", time.perf_counter() - started)

    def run_one(self, name: str, tables: PerceptionTables) -> SuiteOutcome:
        """Validate the tables against the suite called ``name`` (one of :data:`SUITE_NAMES`)."""
        if name not in _BUILDERS:
            raise KeyError(f"unknown suite {name!r}; expected one of {SUITE_NAMES}")
        self._setup()
        started = time.perf_counter()
        outcomes: list[ExpectationOutcome] = []
        n_rows: dict[str, int] = {}
        for part in self._parts[name]:
            frame = tables.table(part.table)
            n_rows[part.table] = len(frame)
            batch = self._batch_definitions[part.table].get_batch(batch_parameters={"dataframe": frame})
            result_format = {
                "result_format": "SUMMARY",
                "unexpected_index_column_names": [part.key_column, *part.context_columns],
                "partial_unexpected_count": max(self.cfg.max_failing_examples, 1),
            }
            with warnings.catch_warnings():
                # pandas warns when a regex has capture groups (the refusal patterns may); harmless here.
                warnings.filterwarnings("ignore", message="This pattern is interpreted as a regular expression")
                suite_result = batch.validate(part.suite, result_format=result_format)
            # GX does not keep the suite's order in its results; the suite's order reads better.
            order = {expectation.description: k for k, expectation in enumerate(part.suite.expectations)}
            results = sorted(
                suite_result.results, key=lambda r: order.get(r.expectation_config.description, len(order))
            )
            outcomes.extend(_outcome(result, part, self.cfg) for result in results)
        outcome = SuiteOutcome(
            name=name,
            description=SUITE_DESCRIPTIONS[name],
            success=all(result.success for result in outcomes),
            expectations=outcomes,
            n_rows=n_rows,
            seconds=round(time.perf_counter() - started, 3),
        )
        log = logger.info if outcome.success else logger.warning
        log("%s in %.2fs", outcome.summary(), outcome.seconds)
        return outcome

    def run(self, tables: PerceptionTables, names: Sequence[str] | None = None) -> list[SuiteOutcome]:
        """Validate the tables against the named suites (all of them by default), in order."""
        return [self.run_one(name, tables) for name in (names or SUITE_NAMES)]


def run_suites(
    samples: Sequence[DescribedSample] | PerceptionTables,
    cfg: ValidationConfig | None = None,
    names: Sequence[str] | None = None,
) -> list[SuiteOutcome]:
    """Validate perception outputs against the named suites (all by default).

    ``samples`` may be the described samples or tables already built from them.
    """
    cfg = cfg or ValidationConfig()
    tables = samples if isinstance(samples, PerceptionTables) else build_tables(samples, cfg.refusal_patterns)
    return PerceptionValidator(cfg).run(tables, names)


def run_suite(
    name: str, samples: Sequence[DescribedSample] | PerceptionTables, cfg: ValidationConfig | None = None
) -> SuiteOutcome:
    """Validate perception outputs against one named suite; see :func:`run_suites`."""
    return run_suites(samples, cfg, names=[name])[0]
