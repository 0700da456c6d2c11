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
