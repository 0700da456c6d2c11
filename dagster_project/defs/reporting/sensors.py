"""Keep Dagster's picture of the days complete: runs made outside it, and the report after its inputs.

- `days_run_outside_dagster` (on by default): records the days the command line
  computed (`dunning demo`, `run`, `backfill`) as materializations, from the run log
  in the analysts' copy (`dagster_project.history`), so the graph shows them.
- `report_automation` (on by default): the automation sensor of `daily_report`
  (eager: the latest day's report follows its documents when a run left it out).
"""

import dagster as dg

from dagster_project.history import copy_version, outside_runs
from dagster_project.resources import DunningResource


@dg.sensor(
    name="days_run_outside_dagster",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records days computed by the command line (dunning demo, run, backfill) as materialized "
                "partitions, read from the run log in the analysts' copy. On by default.",
)
def days_run_outside_dagster(context: dg.SensorEvaluationContext, dunning: DunningResource):
    settings = dunning.settings()
    version = copy_version(settings)
    if version is None:
        return dg.SkipReason(f"no analysts' copy in {settings.analyst_dir} yet")
    if version == context.cursor:
        return dg.SkipReason("no new run since the last look")
    events = outside_runs(context.instance, settings)
    return dg.SensorResult(asset_events=events, cursor=version,
                           skip_reason=None if events else "every day in the run log is in Dagster's history")


report_automation = dg.AutomationConditionSensorDefinition(
    "report_automation",
    target=dg.AssetSelection.assets("daily_report"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests the latest day's daily_report when its documents were materialized without it. "
                "On by default.",
)
