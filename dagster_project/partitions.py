"""The one partitions definition: a day of the business calendar.

Every asset is partitioned by it; the as-of date of a run is its partition key,
never the wall clock.
"""

import dagster as dg

DAILY_START = "2025-01-01"
BUSINESS_TIMEZONE = "Europe/Berlin"

daily_partitions = dg.DailyPartitionsDefinition(start_date=DAILY_START, timezone=BUSINESS_TIMEZONE)

# One writer at a time: DuckDB allows one read-write process per database file.
DUCKDB_POOL = "dunning_duckdb"
