"""The one partitions definition: a day of the business calendar.

Every asset is partitioned by it; the as-of date of a run is its partition key,
never the wall clock. The partitions run up to today (Europe/Berlin): the day's
run at 06:00 computes today's state from the files exported overnight, as
`dunning run --as-of TODAY` and `dunning demo` (which ends today) do, so the
demo's last day is a partition too.
"""

import dagster as dg

DAILY_START = "2025-01-01"
BUSINESS_TIMEZONE = "Europe/Berlin"

daily_partitions = dg.DailyPartitionsDefinition(start_date=DAILY_START, timezone=BUSINESS_TIMEZONE, end_offset=1)

# One writer at a time: DuckDB allows one read-write process per database file. Every step that
# opens the database names this pool; dagster.yaml limits each pool to one step at a time.
DUCKDB_POOL = "dunning_duckdb"


# Dagster's backfill daemon runs a backfill of an asset with a single-run backfill policy as one run
# over its partition range, tagged with that range even when it is one day (and with the backfill's
# id); a job's backfill runs one run per partition, tagged with the backfill's id. Either is a
# backfill (nothing sent, the catch-up choice recorded), whatever its width: only a run of one
# partition outside any backfill (the schedule, a sensor, a materialization of one partition) is a
# live day.
BACKFILL_TAGS = ("dagster/backfill", "dagster/asset_partition_range_start")


def is_backfill_run(context) -> bool:
    """Whether the run computes its partitions as a backfill rather than as the live day."""
    keys = context.partition_key_range
    return keys.start != keys.end or any(tag in context.run.tags for tag in BACKFILL_TAGS)
