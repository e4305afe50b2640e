"""Blocking data checks: Great Expectations suites over the perception outputs.

Each suite is one asset check on ``vlm_descriptions``. They are blocking: in a run that also
materializes downstream assets, a failing suite stops them. Across separate runs (one DVC stage
each) the outcomes are also written to ``data/descriptions/checks.json``, which the training
set refuses to build from when any suite failed.
"""

import dagster as dg

from embodied_r.data.records import write_json
from embodied_r.perception.stage import SAMPLES, read_samples
from embodied_r.validation import SUITE_DESCRIPTIONS, SUITE_NAMES, PerceptionValidator, build_tables
from orchestration.assets.perception import vlm_descriptions
from orchestration.resources import ProjectResource

CHECKS_FILE = "checks.json"


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(name=name, asset=vlm_descriptions, blocking=True, description=SUITE_DESCRIPTIONS[name])
        for name in SUITE_NAMES
    ]
)
def perception_data_checks(context: dg.AssetCheckExecutionContext, project: ProjectResource):
    """Run every Great Expectations suite once over the described samples (one shared GX context)."""
    params = project.load_params()
    out = project.layout(params).descriptions
    samples = read_samples(out / SAMPLES)
    tables = build_tables(samples, params.validation.refusal_patterns)
    outcomes = PerceptionValidator(params.validation).run(tables)
    write_json(
        out / CHECKS_FILE,
        {o.name: {"success": o.success, "failed": [e.description for e in o.failed]} for o in outcomes},
    )
    for outcome in outcomes:
        context.log.info(outcome.summary())
        yield dg.AssetCheckResult(
            asset_key=vlm_descriptions.key,
            check_name=outcome.name,
            passed=outcome.success,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "summary": outcome.summary(),
                "expectations": len(outcome.expectations),
                "failed_expectations": len(outcome.failed),
                "result": dg.MetadataValue.md(outcome.to_markdown()),
            },
        )
