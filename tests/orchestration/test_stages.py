"""``library_stage``: a library stage's log and refusals inside a Dagster step, on a real ephemeral instance."""

import logging

import dagster as dg

from embodied_r.models.pointers import WARM_LM_POINTER, read_pointer
from orchestration.stages import library_stage

library_log = logging.getLogger("embodied_r.training.stage")


def test_the_library_log_reaches_the_steps_dagster_log_and_a_missing_input_is_the_failure(tmp_path):
    @dg.asset
    def stage(context: dg.AssetExecutionContext) -> None:
        with library_stage(context):
            library_log.info("evaluating grpo on 12 test questions")
            library_log.warning("grpo: 40% of the completions hit the token budget")
            read_pointer(tmp_path, WARM_LM_POINTER)

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([stage], instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data
    assert failure.user_failure_data.description == (
        f"{tmp_path / WARM_LM_POINTER} is missing: materialize warm_lm first (`embodied-r materialize warm_lm`, or "
        "`dvc repro`)"
    )
    logs = [(entry.level, entry.user_message) for entry in instance.all_logs(result.run_id)]
    assert (logging.INFO, "evaluating grpo on 12 test questions") in logs
    assert (logging.WARNING, "grpo: 40% of the completions hit the token budget") in logs
    assert logging.getLogger("embodied_r").handlers == [], "the forwarding ends with the step"
