"""Blocking data checks: Great Expectations suites over the perception outputs.

Each suite is one asset check on ``vlm_descriptions``. They are blocking: in a run that also
materializes downstream assets, a failing suite stops them. Across separate runs (one DVC stage
each) the outcomes are also written to ``data/descriptions/checks.json``, which the training
set refuses to build from when any suite failed.

A VLM answer that fails the per-record checks is re-asked on the next run instead of served from the
cache (up to ``perception.max_attempts``); a failing check's description says which answers those are
and which stay failing after the last attempt (``invalid_answers.jsonl``, written by the asset).
"""

import dagster as dg

from embodied_r.validation import SUITE_DESCRIPTIONS, SUITE_NAMES
from embodied_r.validation.recorded import CHECKS_FILE, run_data_checks
from orchestration.assets.perception import vlm_descriptions
from orchestration.resources import ProjectResource

__all__ = ["CHECKS_FILE", "perception_data_checks"]


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(name=name, asset=vlm_descriptions, blocking=True, description=SUITE_DESCRIPTIONS[name])
        for name in SUITE_NAMES
    ]
)
def perception_data_checks(context: dg.AssetCheckExecutionContext, project: ProjectResource):
    """Run every Great Expectations suite once over the described samples (one shared GX context)."""
    params = project.load_params()
    checks = run_data_checks(params, project.layout(params))
    note, invalid = checks.note, checks.invalid_answers
    if note:
        context.log.warning(note)
    for outcome in checks.outcomes:
        context.log.info(outcome.summary())
        # The re-asking note goes with every failing suite: any of them blocks, and the reader needs to know
        # that materializing again will not just replay the same cached answers.
        description = outcome.summary() if outcome.success or not note else f"{outcome.summary()}. {note}"
        yield dg.AssetCheckResult(
            asset_key=vlm_descriptions.key,
            check_name=outcome.name,
            passed=outcome.success,
            severity=dg.AssetCheckSeverity.ERROR,
            description=description,
            metadata={
                "summary": outcome.summary(),
                "expectations": len(outcome.expectations),
                "failed_expectations": len(outcome.failed),
                "invalid_vlm_answers": len(invalid),
                "reasked_next_run": sum(bool(e.get("reasked_next_run")) for e in invalid),
                "result": dg.MetadataValue.md(outcome.to_markdown()),
            },
        )
