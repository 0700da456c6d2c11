"""The daily schedules: today's partition at 06:00 Europe/Berlin. Both off by default.

They send documents to customers, so a deployment turns one on deliberately, in the
UI (Automation -> <schedule> -> on):
- `daily_dunning_schedule` runs the whole day in one run (one machine);
- `daily_state_schedule` runs the day's state only; with `documents_fan_out_sensor`
  on, the documents follow in the fan-out job (a cluster: docs/scaling.md).
`input_files_sensor` is the other way to start the day: when the billing export has arrived.
"""

import dagster as dg

from dagster_project.jobs import daily_dunning_job, daily_state_job
from dagster_project.partitions import BUSINESS_TIMEZONE

SCHEDULE_HOUR = 6


def _daily_schedule(name: str, job, run_key_prefix: str, description: str) -> dg.ScheduleDefinition:
    @dg.schedule(name=name, job=job, cron_schedule=f"0 {SCHEDULE_HOUR} * * *", execution_timezone=BUSINESS_TIMEZONE,
                 default_status=dg.DefaultScheduleStatus.STOPPED, description=description)
    def daily(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        day = context.scheduled_execution_time.date().isoformat()  # already in the execution timezone
        return dg.RunRequest(run_key=f"{run_key_prefix}-{day}", partition_key=day, tags={"dunning/trigger": "schedule"})

    return daily


daily_dunning_schedule = _daily_schedule(
    "daily_dunning_schedule", daily_dunning_job, "schedule",
    "Runs the day (ingest, plan, dispatch, publish, report) at 06:00 Europe/Berlin for that day's partition. "
    "Off by default: it sends documents to customers, so turn it on deliberately.")

daily_state_schedule = _daily_schedule(
    "daily_state_schedule", daily_state_job, "state-schedule",
    "Runs the day's state (ingest, plan) at 06:00 Europe/Berlin for that day's partition; with "
    "documents_fan_out_sensor on, the documents follow in sharded_documents (a cluster). Off by default; turn on "
    "this or daily_dunning_schedule, not both.")
