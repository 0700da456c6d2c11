"""The daily schedule: today's partition at 06:00 Europe/Berlin. Off by default.

It sends documents to customers, so a deployment turns it on deliberately, in the
UI (Automation -> daily_dunning_schedule -> on). `input_files_sensor` is the other
way to start the day: when the billing export has arrived.
"""

import dagster as dg

from dagster_project.jobs import daily_dunning_job
from dagster_project.partitions import BUSINESS_TIMEZONE

SCHEDULE_HOUR = 6


@dg.schedule(
    name="daily_dunning_schedule",
    job=daily_dunning_job,
    cron_schedule=f"0 {SCHEDULE_HOUR} * * *",
    execution_timezone=BUSINESS_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Runs the day (ingest, plan, dispatch, publish, report) at 06:00 Europe/Berlin for that day's "
                "partition. Off by default: it sends documents to customers, so turn it on deliberately.",
)
def daily_dunning_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    day = context.scheduled_execution_time.date().isoformat()  # already in the execution timezone
    return dg.RunRequest(run_key=f"schedule-{day}", partition_key=day, tags={"dunning/trigger": "schedule"})
